// The packed small-M GEMM (kernels/packed_gemm.h) against a double-precision
// loop, on every instruction set this CPU runs and the build compiled (each
// has its own tile height and vectors per panel): row counts around each tile
// height, output counts around the 32-wide panel, odd k, strided rows, bias
// and ReLU on and off, and a product large enough to split over threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "highway_targets.h"
#include "leanai/core/rng.h"
#include "leanai/core/threads.h"
#include "leanai/kernels/packed_gemm.h"

namespace leanai {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool bias, relu;
};

// Runs one case; returns the number of wrong entries (and reports the first).
int64_t check_case(const GemmCase& c, uint64_t seed) {
  Rng rng(seed);
  const int64_t ldx = c.k + 3, ldy = c.n + 5;
  std::vector<float> x(c.m * ldx), w(c.n * c.k), b(c.n);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : w) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : b) v = rng.uniform(-1.0f, 1.0f);
  std::vector<float> packed(packed_gemm_floats(c.n, c.k));
  pack_gemm_weights(w.data(), c.n, c.k, packed.data());
  constexpr float kUntouched = 12345.0f;  // the row padding past n must stay as it was
  std::vector<float> y(c.m * ldy, kUntouched);
  packed_gemm(c.m, x.data(), ldx, {packed.data(), c.n, c.k}, c.bias ? b.data() : nullptr, c.relu, y.data(), ldy);
  int64_t wrong = 0;
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < ldy; ++j) {
      const float got = y[i * ldy + j];
      if (j >= c.n) {
        if (got != kUntouched && wrong++ == 0) ADD_FAILURE() << "wrote past n at row " << i << ", column " << j;
        continue;
      }
      double want = c.bias ? b[j] : 0.0, scale = std::abs(want);
      for (int64_t p = 0; p < c.k; ++p) {
        want += static_cast<double>(x[i * ldx + p]) * w[j * c.k + p];
        scale += std::abs(static_cast<double>(x[i * ldx + p]) * w[j * c.k + p]);
      }
      if (c.relu) want = std::max(want, 0.0);
      if (std::abs(got - want) > 1e-5 * (scale + 1.0) && wrong++ == 0)
        ADD_FAILURE() << "y[" << i << ", " << j << "] = " << got << ", want " << want;
    }
  return wrong;
}

TEST(PackedGemm, EqualsAPlainLoopOnEveryInstructionSet) {
  std::vector<GemmCase> cases;
  for (int64_t m : {1, 2, 3, 5, 6, 7, 12, 13, 25})
    // A last strip alone: 1, 16, 33, 48, 70. One row (m 1) runs in tiles of up to
    // 8 strips: 130 is 8 strips and a partial ninth.
    for (int64_t n : {1, 16, 17, 32, 33, 48, 49, 70, 130})
      for (int64_t k : {1, 7, 64}) cases.push_back({m, n, k, (m + n) % 2 == 0, (m + k) % 3 != 0});
  cases.push_back({300, 70, 64, true, true});  // 1.3M multiply-adds: split over threads
  cases.push_back({40, 256, 257, true, false});
  cases.push_back({0, 5, 3, true, false});  // nothing to write
  cases.push_back({4, 0, 3, true, false});
  cases.push_back({3, 5, 0, true, true});   // an empty sum: act(bias)
  const int targets = test_support::for_each_highway_target([&](const char* target) {
    uint64_t seed = 1;
    for (const GemmCase& c : cases)
      EXPECT_EQ(check_case(c, seed++), 0) << target << ": m " << c.m << ", n " << c.n << ", k " << c.k << ", bias "
                                          << c.bias << ", relu " << c.relu;
  });
  EXPECT_GE(targets, 1);
}

// packed_gemm_rows reads rows by index (repeats allowed): the same bits as
// packed_gemm on those rows copied together.
TEST(PackedGemm, RowsByIndexEqualTheRowsCopiedTogether) {
  const int64_t n = 40, k = 19, ldx = k + 2;
  const std::vector<int64_t> rows = {9, 0, 3, 3, 7, 1, 8, 2, 9};
  const int64_t m = static_cast<int64_t>(rows.size());
  Rng rng(3);
  std::vector<float> x(10 * ldx), w(n * k), b(n), gathered(m * k);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : w) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : b) v = rng.uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < m; ++i) std::copy_n(x.data() + rows[i] * ldx, k, gathered.data() + i * k);
  std::vector<float> packed(packed_gemm_floats(n, k)), by_index(m * n), copied(m * n);
  pack_gemm_weights(w.data(), n, k, packed.data());
  packed_gemm_rows(m, x.data(), ldx, rows.data(), {packed.data(), n, k}, b.data(), true, by_index.data(), n);
  packed_gemm(m, gathered.data(), k, {packed.data(), n, k}, b.data(), true, copied.data(), n);
  EXPECT_EQ(by_index, copied);
  EXPECT_NE(by_index, std::vector<float>(m * n, 0.0f));
}

// packed_gemm_by_panels (batch 1: the outputs split over the threads in
// strips, or kept on one core) gives the same bits as packed_gemm, on every
// instruction set (each addresses a panel's second strip its own way).
TEST(PackedGemm, PanelsSplitOverThreadsGiveTheSameBits) {
  // 96 KB of weights: split between panels; 154 outputs (10 strips, 74
  // KB): through the middle of panel 2; 20 outputs, 9.6 KB: one thread; 20
  // outputs, 80 KB: one panel's two strips on two threads, the second one
  // partial (its bias padded); 77 outputs, 308 KB: 5 strips, 2 + 3 on two
  // threads. At one row the first two run in tiles of up to 8 strips (13
  // strips: 8 + 5 whole, 6 and 7 split) and the last in 5-strip tiles, each
  // column summed the same way however its strips are cut.
  const int targets = test_support::for_each_highway_target([&](const char* target) {
    for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{200, 120}, {154, 120}, {20, 120}, {20, 1000}, {77, 1000}}) {
      Rng rng(static_cast<uint64_t>(n + k));
      std::vector<float> x(4 * k), w(n * k), b(n), packed(packed_gemm_floats(n, k));
      for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
      for (float& v : w) v = rng.uniform(-1.0f, 1.0f);
      for (float& v : b) v = rng.uniform(-1.0f, 1.0f);
      pack_gemm_weights(w.data(), n, k, packed.data());
      for (int64_t m = 1; m <= 4; ++m) {
        std::vector<float> split(m * n), one_core(m * n), whole(m * n);
        packed_gemm_by_panels(m, x.data(), k, {packed.data(), n, k}, b.data(), m % 2 == 0, split.data(), n);
        packed_gemm_by_panels(m, x.data(), k, {packed.data(), n, k}, b.data(), m % 2 == 0, one_core.data(), n, false);
        packed_gemm(m, x.data(), k, {packed.data(), n, k}, b.data(), m % 2 == 0, whole.data(), n);
        EXPECT_EQ(split, whole) << target << ": m " << m << ", n " << n << ", k " << k;
        EXPECT_EQ(one_core, whole) << target << ": m " << m << ", n " << n << ", k " << k;
      }
    }
  });
  EXPECT_GE(targets, 1);
}

TEST(PackedGemm, PackingLaysOutTransposedStripsPaddedWithZeros) {
  const int64_t n = 33, k = 2, strip = kGemmStrip;
  std::vector<float> w(n * k);
  for (int64_t i = 0; i < n * k; ++i) w[i] = static_cast<float>(i + 1);
  std::vector<float> packed(packed_gemm_floats(n, k), -1.0f);
  // Three strips of 16 outputs, the last holding only the 33rd.
  ASSERT_EQ(packed.size(), static_cast<size_t>(3 * strip * k));
  pack_gemm_weights(w.data(), n, k, packed.data());
  EXPECT_EQ(packed[0], w[0 * k + 0]);                  // strip 0, feature 0, output 0
  EXPECT_EQ(packed[5], w[5 * k + 0]);                  // output 5
  EXPECT_EQ(packed[strip + 5], w[5 * k + 1]);          // feature 1
  EXPECT_EQ(packed[2 * strip], w[16 * k + 0]);         // strip 1 starts with output 16, not 32
  EXPECT_EQ(packed[2 * strip * k], w[32 * k + 0]);     // strip 2 starts with output 32
  EXPECT_EQ(packed[2 * strip * k + 1], 0.0f);          // output 33 does not exist
  EXPECT_EQ(packed[2 * strip * k + strip], w[32 * k + 1]);
  EXPECT_EQ(packed.back(), 0.0f);
  EXPECT_EQ(packed_gemm_floats(49, k), 4 * strip * k);
  EXPECT_EQ(packed_gemm_floats(48, k), 3 * strip * k);
  EXPECT_EQ(packed_gemm_floats(0, k), 0);
}

}  // namespace
}  // namespace leanai
