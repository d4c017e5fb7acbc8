// leanai's int8 max pooling (kernels/int8_maxpool.h) against a plain loop:
// channel counts that exercise the full-vector, 32-, 16- and 1-byte paths,
// whole 2x2 windows (their own path) and padded and overlapping ones, u8 and s8 (where a signed max differs from an unsigned
// one), and a batch large enough to split over threads.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <string>
#include <vector>

#include "leanai/core/rng.h"
#include "leanai/kernels/int8_maxpool.h"

namespace leanai {
namespace {

template <typename T>
std::vector<T> plain_maxpool(const Int8PoolShape& s, const std::vector<T>& x) {
  std::vector<T> y(static_cast<size_t>(s.n * s.oh * s.ow * s.c));
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox)
        for (int64_t c = 0; c < s.c; ++c) {
          bool any = false;
          T m = 0;
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
              if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
              const T v = x[((i * s.h + iy) * s.w + ix) * s.c + c];
              m = any ? std::max(m, v) : v;
              any = true;
            }
          y[((i * s.oh + oy) * s.ow + ox) * s.c + c] = m;
        }
  return y;
}

template <typename T>
void check_pool(const Int8PoolShape& s, uint64_t seed) {
  Rng rng(seed);
  std::vector<T> x(static_cast<size_t>(s.n * s.h * s.w * s.c));
  for (T& v : x) v = static_cast<T>(static_cast<int>(rng.uniform() * 256.0) - (std::is_signed_v<T> ? 128 : 0));
  std::vector<T> got(static_cast<size_t>(s.n * s.oh * s.ow * s.c), T{7});
  int8_maxpool_nhwc(s, std::is_signed_v<T>, x.data(), got.data());
  EXPECT_EQ(got, plain_maxpool(s, x));
}

TEST(Int8MaxPool, EqualsAPlainLoop) {
  // n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw
  const Int8PoolShape shapes[] = {
      {3, 32, 26, 26, 13, 13, 2, 2, 2, 2, 0, 0},   // the reference CNN's first pool
      {2, 70, 9, 11, 5, 6, 3, 3, 2, 2, 1, 1},      // 64 + 6 channels, padded windows
      {2, 5, 7, 7, 5, 5, 3, 3, 1, 1, 0, 0},        // fewer channels than a vector, overlapping windows
      {2, 48, 6, 5, 3, 2, 2, 3, 2, 2, 0, 1},       // 32 + 16 channels, a non-square window
      {64, 16, 24, 24, 12, 12, 2, 2, 2, 2, 0, 0},  // enough bytes to split over threads
      {2, 64, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0},       // 2x2 windows, whole 64-byte vectors
      {2, 40, 7, 9, 3, 4, 2, 2, 2, 2, 0, 0},       // 2x2 windows, odd sides (last row and column unread), 32 + 8 channels
  };
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {  // each instruction set this CPU runs
    hwy::SetSupportedTargetsForTest(target);
    uint64_t seed = 1;
    for (const Int8PoolShape& s : shapes) {
      SCOPED_TRACE(std::string(hwy::TargetName(target)) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
                   " k=" + std::to_string(s.kh));
      check_pool<uint8_t>(s, seed++);
      check_pool<int8_t>(s, seed++);
    }
  }
  hwy::SetSupportedTargetsForTest(0);  // back to what the CPU has
}

}  // namespace
}  // namespace leanai
