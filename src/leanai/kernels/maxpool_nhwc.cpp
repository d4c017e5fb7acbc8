// Highway compiles this file once per target (foreach_target.h re-includes
// it); HWY_ONCE marks the single pass that defines the dispatching entry.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "leanai/kernels/maxpool_nhwc.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h
#include <hwy/highway.h>

#include <algorithm>

#include "leanai/core/parallel.h"
#include "leanai/kernels/maxpool_nhwc.h"

HWY_BEFORE_NAMESPACE();
namespace leanai {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One output pixel: the max over the window's rows and columns of c values
// each. Channels go in vectors of up to 32 lanes (a typical channel count is a
// multiple of 16 or 32), then 16, then one at a time.
template <typename T>
void pool_pixel(const T* x, T* y, int64_t c, int64_t row_stride, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  const hn::CappedTag<T, 32> d32;
  const hn::CappedTag<T, 16> d16;
  const int64_t n32 = static_cast<int64_t>(hn::Lanes(d32)), n16 = static_cast<int64_t>(hn::Lanes(d16));
  int64_t k = 0;
  for (; k + n32 <= c; k += n32) {
    auto m = hn::LoadU(d32, x + y0 * row_stride + x0 * c + k);
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) m = hn::Max(m, hn::LoadU(d32, x + iy * row_stride + ix * c + k));
    hn::StoreU(m, d32, y + k);
  }
  for (; k + n16 <= c; k += n16) {
    auto m = hn::LoadU(d16, x + y0 * row_stride + x0 * c + k);
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) m = hn::Max(m, hn::LoadU(d16, x + iy * row_stride + ix * c + k));
    hn::StoreU(m, d16, y + k);
  }
  for (; k < c; ++k) {
    T m = x[y0 * row_stride + x0 * c + k];
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) m = std::max(m, x[iy * row_stride + ix * c + k]);
    y[k] = m;
  }
}

// y[k] = max of the four spans' value k, k < c: one 2x2 window, its four
// input pixels' channels. Full vectors, then 32 and 16 lanes, then single values.
template <typename T>
void max_of_four(const T* p, const T* q, const T* r, const T* t, T* y, int64_t c) {
  const hn::ScalableTag<T> d;
  const hn::CappedTag<T, 32> d32;
  const hn::CappedTag<T, 16> d16;
  int64_t k = 0;
  auto pass = [&](auto tag) HWY_ATTR {
    const int64_t n = static_cast<int64_t>(hn::Lanes(tag));
    for (; k + n <= c; k += n)
      hn::StoreU(hn::Max(hn::Max(hn::LoadU(tag, p + k), hn::LoadU(tag, q + k)),
                         hn::Max(hn::LoadU(tag, r + k), hn::LoadU(tag, t + k))),
                 tag, y + k);
  };
  pass(d);
  pass(d32);
  pass(d16);
  for (; k < c; ++k) y[k] = std::max(std::max(p[k], q[k]), std::max(r[k], t[k]));
}

// 2x2 windows at stride 2, no padding (the pool after most convolutions):
// every window whole, so no clipping and no window loops, only the four
// pixels' loads and their max.
template <typename T>
void pool_samples_2x2(const MaxPoolShape& s, const T* x, T* y, int64_t begin, int64_t end) {
  const hn::ScalableTag<T> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t c = s.c, row = s.w * c;
  for (int64_t i = begin; i < end; ++i)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const T* top = x + (i * s.h + 2 * oy) * row;
      const T* bottom = top + row;
      T* out = y + (i * s.oh + oy) * s.ow * c;
      if (c % lanes == 0) {  // whole vectors (16 f32 channels of a block on AVX-512): one tight loop
        for (int64_t ox = 0; ox < s.ow; ++ox)
          for (int64_t k = 0; k < c; k += lanes) {
            const int64_t at = 2 * ox * c + k;
            hn::StoreU(hn::Max(hn::Max(hn::LoadU(d, top + at), hn::LoadU(d, top + at + c)),
                               hn::Max(hn::LoadU(d, bottom + at), hn::LoadU(d, bottom + at + c))),
                       d, out + ox * c + k);
          }
        continue;
      }
      for (int64_t ox = 0; ox < s.ow; ++ox)
        max_of_four(top + 2 * ox * c, top + (2 * ox + 1) * c, bottom + 2 * ox * c, bottom + (2 * ox + 1) * c,
                    out + ox * c, c);
    }
}

bool whole_2x2_windows(const MaxPoolShape& s) {
  return s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0 && 2 * s.oh <= s.h &&
         2 * s.ow <= s.w;
}

template <typename T>
void pool_samples(const MaxPoolShape& s, const T* x, T* y, int64_t begin, int64_t end) {
  if (whole_2x2_windows(s)) return pool_samples_2x2(s, x, y, begin, end);
  const int64_t row_stride = s.w * s.c;
  for (int64_t i = begin; i < end; ++i) {
    const T* xi = x + i * s.h * row_stride;
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const int64_t y0 = std::max<int64_t>(0, oy * s.sh - s.ph), y1 = std::min(s.h, oy * s.sh - s.ph + s.kh);
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        const int64_t x0 = std::max<int64_t>(0, ox * s.sw - s.pw), x1 = std::min(s.w, ox * s.sw - s.pw + s.kw);
        pool_pixel(xi, y + ((i * s.oh + oy) * s.ow + ox) * s.c, s.c, row_stride, y0, y1, x0, x1);
      }
    }
  }
}

void MaxPoolNhwc(const MaxPoolShape& s, PoolElement element, const void* x, void* y, int64_t begin, int64_t end) {
  switch (element) {
    case PoolElement::u8: return pool_samples(s, static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), begin, end);
    case PoolElement::s8: return pool_samples(s, static_cast<const int8_t*>(x), static_cast<int8_t*>(y), begin, end);
    case PoolElement::f32: return pool_samples(s, static_cast<const float*>(x), static_cast<float*>(y), begin, end);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace leanai
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

namespace leanai {

HWY_EXPORT(MaxPoolNhwc);

void maxpool_nhwc(const MaxPoolShape& s, PoolElement element, const void* x, void* y) {
  const int64_t values = s.n * s.h * s.w * s.c;
  // f32 16-channel blocks at batch 1 come from a convolution that ran over
  // both cores, a block or so each in its core's cache: from 64 KB they are
  // pooled on both too (oneDNN's pooling does the same).
  const bool split = element == PoolElement::f32 ? values * 4 >= (64 << 10) : values > kParallelMinElements;
  if (s.n < 2 || !split || omp_in_parallel()) {
    HWY_DYNAMIC_DISPATCH(MaxPoolNhwc)(s, element, x, y, 0, s.n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    HWY_DYNAMIC_DISPATCH(MaxPoolNhwc)(s, element, x, y, s.n * t / threads, s.n * (t + 1) / threads);
  }
}

}  // namespace leanai
#endif  // HWY_ONCE
