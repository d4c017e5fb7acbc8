// The f32 small-channel convolution (kernels/f32_small_conv.h) against a
// double-precision loop on every instruction set this CPU runs and the build
// compiled: 1-4 input channels, 16 and 48 outputs, strides, padding, kernel
// sizes, widths around the 8-pixel block, bias and ReLU, a fused 2x2 pooling,
// and batches that run serially, split by rows and split by samples.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "expect_error.h"
#include "highway_targets.h"
#include "leanai/core/rng.h"
#include "leanai/kernels/f32_small_conv.h"

namespace leanai {
namespace {

// Runs one layer on n samples; returns the number of wrong outputs (and reports the first).
int64_t check_layer(const F32SmallConvSpec& s, int64_t n, bool bias, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n * s.in_c * s.in_h * s.in_w), w(s.out_c * s.in_c * s.kh * s.kw), b(s.out_c);
  for (float& v : x) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : w) v = rng.uniform(-1.0f, 1.0f);
  for (float& v : b) v = rng.uniform(-1.0f, 1.0f);
  const int64_t yh = s.y_h(), yw = s.y_w();
  std::vector<float> y(n * s.out_c * yh * yw, 12345.0f);
  F32SmallConv(s, w.data(), bias ? b.data() : nullptr).run(x.data(), n, y.data());
  // The conv output at (i, o, r, col) in double, and a bound on its rounding.
  auto conv = [&](int64_t i, int64_t o, int64_t r, int64_t col, double& scale) {
    double sum = bias ? b[o] : 0.0;
    scale = std::abs(sum);
    for (int64_t c = 0; c < s.in_c; ++c)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const int64_t iy = r * s.stride_h + ky - s.pad_h, ix = col * s.stride_w + kx - s.pad_w;
          if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
          const double p = static_cast<double>(x[((i * s.in_c + c) * s.in_h + iy) * s.in_w + ix]) *
                           w[((o * s.in_c + c) * s.kh + ky) * s.kw + kx];
          sum += p;
          scale += std::abs(p);
        }
    return s.relu ? std::max(sum, 0.0) : sum;
  };
  int64_t wrong = 0;
  const int64_t window = s.pool ? 2 : 1;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < s.out_c; ++o)
      for (int64_t r = 0; r < yh; ++r)
        for (int64_t col = 0; col < yw; ++col) {
          double want = -1e300, scale = 0.0;
          for (int64_t dy = 0; dy < window; ++dy)
            for (int64_t dx = 0; dx < window; ++dx) {
              double sc = 0.0;
              want = std::max(want, conv(i, o, r * window + dy, col * window + dx, sc));
              scale = std::max(scale, sc);
            }
          // nChw16c: [n][o / 16][r][col][o % 16]
          const float got = y[(((i * (s.out_c / 16) + o / 16) * yh + r) * yw + col) * 16 + o % 16];
          if (std::abs(got - want) > 1e-5 * (scale + 1.0) && wrong++ == 0)
            ADD_FAILURE() << "sample " << i << ", channel " << o << ", pixel (" << r << ", " << col << "): " << got
                          << ", want " << want;
        }
  return wrong;
}

TEST(F32SmallConv, EqualsAPlainLoopOnEveryInstructionSet) {
  std::vector<F32SmallConvSpec> specs;
  for (int64_t in_c : {1, 3})
    for (int64_t out_c : {16, 48})
      for (int64_t k : {1, 3, 5})
        for (int64_t stride : {1, 2})
          for (int64_t pad : {0, 1}) {
            F32SmallConvSpec s;
            s.in_c = in_c, s.out_c = out_c, s.kh = k, s.kw = k, s.stride_h = s.stride_w = stride;
            s.pad_h = s.pad_w = pad;
            s.in_h = 11, s.in_w = 13 + stride;  // rows of 6-16 outputs: whole 8-pixel blocks and tails
            s.relu = (in_c + k + stride) % 2 == 0;
            for (bool pool : {false, true})
              for (bool split : {false, true}) {
                s.pool = pool, s.split_rows = split;
                if (s.y_h() >= 1 && s.y_w() >= 1) specs.push_back(s);
              }
          }
  F32SmallConvSpec odd;  // 4 channels, a 2x4 kernel, uneven strides and padding
  odd.in_c = 4, odd.in_h = 6, odd.in_w = 9, odd.out_c = 32, odd.kh = 2, odd.kw = 4;
  odd.stride_h = 2, odd.stride_w = 1, odd.pad_h = 0, odd.pad_w = 2, odd.relu = true;
  specs.push_back(odd);
  odd.pool = true;  // 3 x 10 conv outputs: pooled 1 x 5, the last row and none of the columns left over
  specs.push_back(odd);
  F32SmallConvSpec narrow = odd;  // 2 x 3 conv outputs: one pooled pixel, narrower than a block
  narrow.in_h = 4, narrow.in_w = 3, narrow.pad_w = 1, narrow.split_rows = true;
  specs.push_back(narrow);
  const int targets = test_support::for_each_highway_target([&](const char* target) {
    uint64_t seed = 1;
    for (const F32SmallConvSpec& s : specs)
      for (int64_t n : {1, 9})  // 9: samples split over the threads
        EXPECT_EQ(check_layer(s, n, seed % 3 != 0, seed), 0)
            << target << ": "<< s.in_c << " -> " << s.out_c << ", k " << s.kh << "x" << s.kw
            << ", stride " << s.stride_h << ", pad " << s.pad_h << (s.pool ? ", pooled" : "")
            << (s.split_rows ? ", rows split" : "") << ", n " << n << ", seed " << seed++;
  });
  EXPECT_GE(targets, 1);
}

TEST(F32SmallConv, RefusesLayersItIsNotWrittenFor) {
  EXPECT_FALSE(f32_small_conv_fits(5, 16));
  EXPECT_FALSE(f32_small_conv_fits(1, 24));
  EXPECT_TRUE(f32_small_conv_fits(3, 64));
  F32SmallConvSpec s;
  s.in_c = 8, s.in_h = s.in_w = 5, s.out_c = 16;
  std::vector<float> w(16 * 8 * 9);
  test_support::expect_error(
      [&] { F32SmallConv(s, w.data(), nullptr); },
      {"f32 small conv", "needs 1-4 input channels and whole 16-channel output blocks", "8 -> 16"});
  s.in_c = 1, s.in_h = 5, s.in_w = 1, s.kh = s.kw = 1, s.pool = true;  // a 5 x 1 conv output pools to nothing
  test_support::expect_error([&] { F32SmallConv(s, w.data(), nullptr); }, {"f32 small conv", "invalid geometry"});
}

}  // namespace
}  // namespace leanai
