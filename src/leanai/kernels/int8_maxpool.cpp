// Highway compiles this file once per target (foreach_target.h re-includes
// it); HWY_ONCE marks the single pass that defines the dispatching entry.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "leanai/kernels/int8_maxpool.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h
#include <hwy/highway.h>

#include <algorithm>

#include "leanai/core/parallel.h"
#include "leanai/kernels/int8_maxpool.h"

HWY_BEFORE_NAMESPACE();
namespace leanai {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One output pixel: the max over the window's rows and columns of c bytes each.
// Channels go in 32-byte vectors (a typical channel count is a multiple of 16
// or 32), then 16, then one at a time.
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

template <typename T>
void pool_samples(const Int8PoolShape& s, const T* x, T* y, int64_t begin, int64_t end) {
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

void Int8MaxPool(const Int8PoolShape& s, bool is_signed, const void* x, void* y, int64_t begin, int64_t end) {
  if (is_signed) return pool_samples(s, static_cast<const int8_t*>(x), static_cast<int8_t*>(y), begin, end);
  pool_samples(s, static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), begin, end);
}

}  // namespace HWY_NAMESPACE
}  // namespace leanai
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

namespace leanai {

HWY_EXPORT(Int8MaxPool);

void int8_maxpool_nhwc(const Int8PoolShape& s, bool is_signed, const void* x, void* y) {
  const int64_t bytes = s.n * s.h * s.w * s.c;
  if (s.n < 2 || bytes <= kParallelMinElements || omp_in_parallel()) {
    HWY_DYNAMIC_DISPATCH(Int8MaxPool)(s, is_signed, x, y, 0, s.n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    HWY_DYNAMIC_DISPATCH(Int8MaxPool)(s, is_signed, x, y, s.n * t / threads, s.n * (t + 1) / threads);
  }
}

}  // namespace leanai
#endif  // HWY_ONCE
