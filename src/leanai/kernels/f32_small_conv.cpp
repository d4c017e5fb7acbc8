// Highway compiles this file once per target (foreach_target.h re-includes
// it); HWY_ONCE marks the single pass that defines the dispatching entry.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "leanai/kernels/f32_small_conv.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "leanai/kernels/f32_small_conv.h"

namespace leanai {
#ifndef LEANAI_F32_SMALL_CONV_ARGS
#define LEANAI_F32_SMALL_CONV_ARGS
constexpr int64_t kBlock = 16;  // output channels per group, as nChw16c stores them

// One sample's convolution: its input planes already zero-padded.
struct SmallConvArgs {
  const float* padded;         // [in_c][padded_h][padded_w]
  const float* weights;        // [group][in_c][kh][kw][16]
  const float* bias;           // [out_c]
  const int64_t* tap_offset;   // per (c, ky, kx): its input's offset from the window's corner
  float* y;                    // [groups][out_h][out_w][16]
  int64_t taps, padded_w, stride_h, stride_w, groups;
  int64_t out_h, out_w;        // of y: pooled when pool is set
  int64_t row_begin, row_end;  // y's rows to compute
  bool relu, pool;
};
#endif
}  // namespace leanai

HWY_BEFORE_NAMESPACE();
namespace leanai {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using Tag = hn::CappedTag<float, kBlock>;
constexpr int kVectors = static_cast<int>(kBlock / hn::MaxLanes(Tag()));  // per 16 channels
// Pixels of a row computed together: 8 accumulator vectors, enough
// independent FMAs to hide their latency, within 16 registers on AVX2.
constexpr int kPixels = kVectors >= 8 ? 1 : 8 / kVectors;
// Pooled, two rows of an even number of pixels: 16 accumulators with
// AVX-512's 32 registers, else 8 (or 16 for SSE4, which then spills).
constexpr int kPoolPixels = kVectors == 1 ? 8 : std::max(2, kPixels / 2);

// Output pixels [ox, ox + P) of conv rows oy .. oy + R - 1, channel group g;
// with R = 2 they are max-pooled in 2x2 windows into pooled row oy / 2,
// columns ox / 2 .. (ox + P) / 2 - 1. kStride: the column stride when known
// at compile time (1), else 0 (read from a). With it known the P inputs of a
// tap are fixed displacements from one address; computed at run time they
// were a chain of adds each FMA waited on.
template <int R, int P, int kStride>
void pixels(const SmallConvArgs& a, int64_t g, int64_t oy, int64_t ox) {
  const Tag d;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(Tag()));
  using V = hn::Vec<Tag>;
  V acc[R][P][kVectors];
  for (int v = 0; v < kVectors; ++v) {
    const V b = hn::LoadU(d, a.bias + g * kBlock + v * N);
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < P; ++p) acc[r][p][v] = b;
  }
  const int64_t sw = kStride > 0 ? kStride : a.stride_w, taps = a.taps, row_step = a.stride_h * a.padded_w;
  const float* w = a.weights + g * taps * kBlock;
  const float* corner = a.padded + oy * row_step + ox * sw;
  // One flat loop over the taps: nested channel and row loops made GCC keep
  // the accumulators on the stack between them.
  for (int64_t t = 0; t < taps; ++t) {
    const float* in = corner + a.tap_offset[t];
    V wv[kVectors];
    for (int v = 0; v < kVectors; ++v) wv[v] = hn::LoadU(d, w + t * kBlock + v * N);
    for (int r = 0; r < R; ++r)
      for (int p = 0; p < P; ++p) {
        const V x = hn::Set(d, in[r * row_step + p * sw]);
        for (int v = 0; v < kVectors; ++v) acc[r][p][v] = hn::MulAdd(x, wv[v], acc[r][p][v]);
      }
  }
  // ReLU commutes with max: applied last, once per pooled value.
  auto finish = [&](V v) HWY_ATTR { return a.relu ? hn::Max(v, hn::Zero(d)) : v; };
  if constexpr (R == 1) {
    float* out = a.y + ((g * a.out_h + oy) * a.out_w + ox) * kBlock;
    for (int p = 0; p < P; ++p)
      for (int v = 0; v < kVectors; ++v) hn::StoreU(finish(acc[0][p][v]), d, out + p * kBlock + v * N);
  } else {
    float* out = a.y + ((g * a.out_h + oy / 2) * a.out_w + ox / 2) * kBlock;
    for (int q = 0; q < P / 2; ++q)
      for (int v = 0; v < kVectors; ++v) {
        const V top = hn::Max(acc[0][2 * q][v], acc[0][2 * q + 1][v]);
        const V bottom = hn::Max(acc[1][2 * q][v], acc[1][2 * q + 1][v]);
        hn::StoreU(finish(hn::Max(top, bottom)), d, out + q * kBlock + v * N);
      }
  }
}

// Conv row oy (R = 1) or the row pair oy, oy + 1 pooled (R = 2), over
// `width` conv columns in blocks of P. A row's last block ends at its last
// column, overlapping the one before (computed twice, to the same values):
// one column at a time, a tail's FMAs would each wait on the last one's result.
template <int R, int P, int kStride>
void row(const SmallConvArgs& a, int64_t g, int64_t oy, int64_t width) {
  for (int64_t ox = 0;; ox += P) {
    const int64_t at = std::min(ox, width - P);
    pixels<R, P, kStride>(a, g, oy, at);
    if (at + P >= width) break;
  }
}

template <int kStride>
void rows(const SmallConvArgs& a) {
  for (int64_t g = 0; g < a.groups; ++g)
    for (int64_t y = a.row_begin; y < a.row_end; ++y) {
      if (a.pool) {
        const int64_t width = 2 * a.out_w;  // conv columns under the pooled ones
        if (width >= kPoolPixels)
          row<2, kPoolPixels, kStride>(a, g, 2 * y, width);
        else
          row<2, 2, kStride>(a, g, 2 * y, width);
      } else if (a.out_w >= kPixels) {
        row<1, kPixels, kStride>(a, g, y, a.out_w);
      } else {
        row<1, 1, kStride>(a, g, y, a.out_w);
      }
    }
}

// Output rows [row_begin, row_end) of one sample.
void F32SmallConvRows(const SmallConvArgs& a) { a.stride_w == 1 ? rows<1>(a) : rows<0>(a); }

}  // namespace HWY_NAMESPACE
}  // namespace leanai
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include "leanai/core/error.h"

namespace leanai {

HWY_EXPORT(F32SmallConvRows);

bool f32_small_conv_fits(int64_t in_c, int64_t out_c) {
  return in_c >= 1 && in_c <= 4 && out_c >= kBlock && out_c % kBlock == 0;
}

F32SmallConv::F32SmallConv(const F32SmallConvSpec& spec, const float* w, const float* bias) : spec_(spec) {
  const F32SmallConvSpec& s = spec_;
  check(f32_small_conv_fits(s.in_c, s.out_c),
        "f32 small conv: needs 1-4 input channels and whole 16-channel output blocks, got " + std::to_string(s.in_c) +
            " -> " + std::to_string(s.out_c));
  check(s.kh >= 1 && s.kw >= 1 && s.stride_h >= 1 && s.stride_w >= 1 && s.pad_h >= 0 && s.pad_w >= 0 &&
            s.in_h + 2 * s.pad_h >= s.kh && s.in_w + 2 * s.pad_w >= s.kw && s.y_h() >= 1 && s.y_w() >= 1,
        "f32 small conv: invalid geometry (a kernel larger than the padded input, or nothing to output)");
  padded_h_ = s.in_h + 2 * s.pad_h;
  padded_w_ = s.in_w + 2 * s.pad_w;
  const int64_t taps = s.in_c * s.kh * s.kw;
  weights_.resize(static_cast<size_t>(s.out_c * taps));
  for (int64_t o = 0; o < s.out_c; ++o)
    for (int64_t t = 0; t < taps; ++t) weights_[((o / kBlock) * taps + t) * kBlock + o % kBlock] = w[o * taps + t];
  for (int64_t c = 0; c < s.in_c; ++c)
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) tap_offset_.push_back((c * padded_h_ + ky) * padded_w_ + kx);
  bias_.assign(static_cast<size_t>(s.out_c), 0.0f);
  if (bias) std::copy_n(bias, s.out_c, bias_.begin());
}

void F32SmallConv::run(const float* x, int64_t n, float* y) const {
  const F32SmallConvSpec& s = spec_;
  const int64_t in_sample = s.in_c * s.in_h * s.in_w, out_sample = s.out_c * s.y_h() * s.y_w();
  auto rows = HWY_DYNAMIC_DISPATCH(F32SmallConvRows);
  // Sample i's input zero-padded into `padded`; its arguments for all rows.
  auto prepare = [&](int64_t i, std::vector<float>& padded) {
    padded.assign(static_cast<size_t>(s.in_c * padded_h_ * padded_w_), 0.0f);
    for (int64_t c = 0; c < s.in_c; ++c)
      for (int64_t r = 0; r < s.in_h; ++r)
        std::memcpy(padded.data() + (c * padded_h_ + r + s.pad_h) * padded_w_ + s.pad_w,
                    x + i * in_sample + (c * s.in_h + r) * s.in_w, static_cast<size_t>(s.in_w) * sizeof(float));
    return SmallConvArgs{padded.data(), weights_.data(), bias_.data(), tap_offset_.data(), y + i * out_sample,
                         static_cast<int64_t>(tap_offset_.size()), padded_w_, s.stride_h, s.stride_w,
                         s.out_c / kBlock, s.y_h(), s.y_w(), 0, s.y_h(), s.relu, s.pool};
  };
  static thread_local std::vector<float> padded;
  const bool outside = !omp_in_parallel() && omp_get_max_threads() > 1;
  // A sample is a few microseconds of work: waking the pool pays from about 8.
  if (n >= 8 && outside) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) rows(prepare(i, padded));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!s.split_rows || !outside) {
      rows(prepare(i, padded));
      continue;
    }
    // Each thread pads its own copy: read from the caller's cache, where
    // the caller had just written it, the padded input cost the other core
    // much of what the split saved. An RGB first layer (3 -> 32 channels,
    // 32x32, pooled) split took 11.4 us, 16.2 on one core; padded by each,
    // 9.5 (bench/small_conv_probe.cpp 3 32 32).
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
      const SmallConvArgs whole = prepare(i, padded);
      SmallConvArgs part = whole;
      part.row_begin = whole.row_end * t / threads;
      part.row_end = whole.row_end * (t + 1) / threads;
      if (part.row_begin < part.row_end) rows(part);
    }
  }
}

}  // namespace leanai
#endif  // HWY_ONCE
