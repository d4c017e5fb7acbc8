// leanai's NHWC max pooling (kernels/maxpool_nhwc.h) against a plain loop:
// channel counts that exercise the full-vector, 32-, 16- and 1-lane paths,
// whole 2x2 windows (their own path) and padded and overlapping ones; u8, s8
// (where a signed max differs from an unsigned one) and f32; and a batch large
// enough to split over threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "highway_targets.h"
#include "leanai/core/rng.h"
#include "leanai/kernels/maxpool_nhwc.h"

namespace leanai {
namespace {

template <typename T>
std::vector<T> plain_maxpool(const MaxPoolShape& s, const std::vector<T>& x) {
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
void check_pool(const MaxPoolShape& s, uint64_t seed) {
  Rng rng(seed);
  std::vector<T> x(static_cast<size_t>(s.n * s.h * s.w * s.c));
  for (T& v : x) {
    if constexpr (std::is_floating_point_v<T>)
      v = rng.uniform(-3.0f, 1.0f);  // mostly negative: a max against an implicit 0 would show
    else
      v = static_cast<T>(static_cast<int>(rng.uniform() * 256.0) - (std::is_signed_v<T> ? 128 : 0));
  }
  std::vector<T> got(static_cast<size_t>(s.n * s.oh * s.ow * s.c), T{7});
  const PoolElement element = std::is_floating_point_v<T> ? PoolElement::f32
                              : std::is_signed_v<T>        ? PoolElement::s8
                                                           : PoolElement::u8;
  maxpool_nhwc(s, element, x.data(), got.data());
  EXPECT_EQ(got, plain_maxpool(s, x));
}

TEST(MaxPoolNhwc, EqualsAPlainLoop) {
  // n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw
  const MaxPoolShape shapes[] = {
      {3, 32, 26, 26, 13, 13, 2, 2, 2, 2, 0, 0},   // the reference CNN's first pool
      {2, 70, 9, 11, 5, 6, 3, 3, 2, 2, 1, 1},      // 64 + 6 channels, padded windows
      {2, 5, 7, 7, 5, 5, 3, 3, 1, 1, 0, 0},        // fewer channels than a vector, overlapping windows
      {2, 48, 6, 5, 3, 2, 2, 3, 2, 2, 0, 1},       // 32 + 16 channels, a non-square window
      {64, 16, 24, 24, 12, 12, 2, 2, 2, 2, 0, 0},  // enough bytes to split over threads
      {2, 64, 6, 6, 3, 3, 2, 2, 2, 2, 0, 0},       // 2x2 windows, whole 64-byte vectors
      {2, 40, 7, 9, 3, 4, 2, 2, 2, 2, 0, 0},       // 2x2 windows, odd sides (last row and column unread), 32 + 8 channels
  };
  const int targets = test_support::for_each_highway_target([&](const char* target) {
    uint64_t seed = 1;
    for (const MaxPoolShape& s : shapes) {
      SCOPED_TRACE(std::string(target) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
                   " k=" + std::to_string(s.kh));
      check_pool<uint8_t>(s, seed++);
      check_pool<int8_t>(s, seed++);
      check_pool<float>(s, seed++);
    }
  });
  EXPECT_GE(targets, 1);
}

}  // namespace
}  // namespace leanai
