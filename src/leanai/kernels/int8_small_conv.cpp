// The small-channel int8 convolution (see int8_small_conv.h). AVX-512 VNNI
// intrinsics in functions compiled for that target only; the library itself
// is built for the baseline ISA and calls them after a run-time CPU check.
#include "leanai/kernels/int8_small_conv.h"

// GCC 12 reports its own _mm512_undefined_* helpers as uninitialized when
// they are inlined into target-attributed functions (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "leanai/core/error.h"

#define LEANAI_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace leanai {
namespace {

constexpr int64_t kLanes = 16;      // int32 lanes per zmm: output channels per group
constexpr int kPixels = 4;          // output columns computed together
constexpr int64_t kMaxGroupsAtOnce = 4;  // 4 groups x 4 pixels = 16 accumulators

int64_t dots_per_row(int64_t kw) { return (kw + 3) / 4; }

enum class Out { f32, u8, s8 };

// Everything one sample's loops read, as plain values (copied into locals by
// the loops: stores through the output pointer could alias a struct's fields).
struct SampleArgs {
  const float* x;
  uint8_t* buf;
  void* y;
  const int32_t* packed;     // [group][dot][16]
  const int64_t* dot_offset;  // per dot: its 4 bytes' offset in the padded buffer from the window's corner
  const int32_t* acc0;
  const float* mul;
  const float* add;
  int64_t in_c, in_h, in_w, pad_h, pad_w, stride_h, stride_w;
  int64_t out_c, out_h, out_w, groups, dots, row_stride, plane_bytes;
  DType in_type;
  Out out;
  // The epilogue's lower bound, folding ReLU and the unsigned bound into one
  // max: mul and add already divide by the output scale and add its zero
  // point, so ReLU (a max with 0 before requantizing) is a max with the zero
  // point; u8 also needs >= 0, s8 >= -128 (both then saturate from above).
  float floor;
  float in_scale, in_zero;
  uint8_t pad_value;
};

// x (one sample, f32 planes) -> u8 rows of the padded buffer: round(x / s) + z,
// saturated to the input type, then shifted by 128 for i8 (VNNI reads u8).
LEANAI_VNNI_TARGET void quantize_into_buffer(const SampleArgs& a) {
  const bool u8 = a.in_type == DType::u8;
  const __m512 scale = _mm512_set1_ps(a.in_scale), z = _mm512_set1_ps(a.in_zero);
  const __m512 lo = _mm512_set1_ps(u8 ? 0.0f : -128.0f), hi = _mm512_set1_ps(u8 ? 255.0f : 127.0f);
  const __m512i shift = _mm512_set1_epi32(u8 ? 0 : 128);
  const int64_t in_c = a.in_c, in_h = a.in_h, in_w = a.in_w;
  std::memset(a.buf, a.pad_value, static_cast<size_t>(in_c * a.plane_bytes));
  for (int64_t c = 0; c < in_c; ++c)
    for (int64_t r = 0; r < in_h; ++r) {
      const float* src = a.x + (c * in_h + r) * in_w;
      uint8_t* dst = a.buf + c * a.plane_bytes + (r + a.pad_h) * a.row_stride + a.pad_w;
      for (int64_t j = 0; j < in_w; j += kLanes) {
        const __mmask16 m = static_cast<__mmask16>(in_w - j >= kLanes ? 0xFFFF : (1u << (in_w - j)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, src + j);
        // Division, not a multiply by 1/s: the same rounding as quantize_value.
        const __m512 q = _mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
        const __m512i qi = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(q, lo), hi)), shift);
        _mm_mask_storeu_epi8(dst + j, m, _mm512_cvtusepi32_epi8(qi));
      }
    }
}

// G groups of 16 channels for P output columns starting at ox, output row oy:
// out = max(acc * mul + add, floor), stored as f32 or saturated int8.
template <int G, int P, Out K>
LEANAI_VNNI_TARGET void conv_block(const SampleArgs& a, int64_t g0, int64_t oy, int64_t ox) {
  const int64_t dots = a.dots, stride_w = a.stride_w, out_c = a.out_c;
  const uint8_t* corner = a.buf + oy * a.stride_h * a.row_stride + ox * stride_w;
  const int32_t* w = a.packed + g0 * dots * kLanes;
  __m512i acc[G][P];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    const __m512i start = _mm512_loadu_si512(a.acc0 + (g0 + g) * kLanes);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) acc[g][p] = start;
  }
  for (int64_t d = 0; d < dots; ++d) {
    const uint8_t* at = corner + a.dot_offset[d];
    __m512i x[P];
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      int32_t four;
      std::memcpy(&four, at + p * stride_w, 4);
      x[p] = _mm512_set1_epi32(four);
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const __m512i wv = _mm512_loadu_si512(w + (g * dots + d) * kLanes);
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) acc[g][p] = _mm512_dpbusd_epi32(acc[g][p], x[p], wv);
    }
  }
  const __m512 floor = _mm512_set1_ps(a.floor);
  const int64_t pixel0 = oy * a.out_w + ox;
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) {
    const int64_t c0 = (g0 + g) * kLanes, left = out_c - c0;
    const bool whole = left >= kLanes;
    const __mmask16 m = static_cast<__mmask16>(whole ? 0xFFFF : (1u << left) - 1);
    const __m512 mul = _mm512_loadu_ps(a.mul + c0), add = _mm512_loadu_ps(a.add + c0);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      const __m512 v = _mm512_max_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[g][p]), mul, add), floor);
      const int64_t at = (pixel0 + p) * out_c + c0;
      if constexpr (K == Out::f32) {
        _mm512_mask_storeu_ps(static_cast<float*>(a.y) + at, m, v);
      } else {
        // Round to nearest even (as nearbyint), then saturate to bytes.
        const __m512i q = _mm512_cvtps_epi32(v);
        const __m128i bytes = K == Out::u8 ? _mm512_cvtusepi32_epi8(q) : _mm512_cvtsepi32_epi8(q);
        uint8_t* dst = static_cast<uint8_t*>(a.y) + at;
        if (whole) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
        } else {
          _mm_mask_storeu_epi8(dst, m, bytes);
        }
      }
    }
  }
}

template <int G, Out K>
LEANAI_VNNI_TARGET void conv_groups(const SampleArgs& a, int64_t g0) {
  const int64_t oh = a.out_h, ow = a.out_w;
  for (int64_t oy = 0; oy < oh; ++oy) {
    int64_t ox = 0;
    for (; ox + kPixels <= ow; ox += kPixels) conv_block<G, kPixels, K>(a, g0, oy, ox);
    for (; ox < ow; ++ox) conv_block<G, 1, K>(a, g0, oy, ox);
  }
}

template <Out K>
LEANAI_VNNI_TARGET void conv_all_groups(const SampleArgs& a) {
  for (int64_t g0 = 0; g0 < a.groups; g0 += kMaxGroupsAtOnce) {
    switch (std::min(kMaxGroupsAtOnce, a.groups - g0)) {
      case 1: conv_groups<1, K>(a, g0); break;
      case 2: conv_groups<2, K>(a, g0); break;
      case 3: conv_groups<3, K>(a, g0); break;
      default: conv_groups<4, K>(a, g0); break;
    }
  }
}

LEANAI_VNNI_TARGET void run_sample_vnni(const SampleArgs& a) {
  quantize_into_buffer(a);
  switch (a.out) {
    case Out::f32: return conv_all_groups<Out::f32>(a);
    case Out::u8: return conv_all_groups<Out::u8>(a);
    case Out::s8: return conv_all_groups<Out::s8>(a);
  }
}

}  // namespace

bool int8_small_conv_pays(int64_t in_c, int64_t kh, int64_t kw) {
  return in_c * kh * dots_per_row(kw) < kh * kw * ((in_c + 3) / 4);
}

bool int8_small_conv_cpu_ok() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

Int8SmallConv::Int8SmallConv(const Int8SmallConvSpec& spec, const int8_t* wq, const float* w_scale, const float* bias)
    : spec_(spec) {
  const Int8SmallConvSpec& s = spec_;
  check(s.in_c >= 1 && s.kh >= 1 && s.kw >= 1 && s.out_c >= 1 && s.stride_h >= 1 && s.stride_w >= 1 && s.pad_h >= 0 &&
            s.pad_w >= 0 && s.out_h() >= 1 && s.out_w() >= 1,
        "int8 small conv: invalid geometry");
  check(s.input.dtype == DType::u8 || s.input.dtype == DType::i8, "int8 small conv: the input must quantize to u8 or i8");
  const int64_t per_row = dots_per_row(s.kw);
  groups_ = (s.out_c + kLanes - 1) / kLanes;
  dots_ = s.in_c * s.kh * per_row;
  // Room for the last 4-byte read of a row (up to 3 columns past the padding).
  row_stride_ = s.in_w + 2 * s.pad_w + 4;
  plane_bytes_ = (s.in_h + 2 * s.pad_h) * row_stride_;
  const int32_t z_u = s.input.zero_point + (s.input.dtype == DType::i8 ? 128 : 0);
  pad_value_ = static_cast<uint8_t>(z_u);

  for (int64_t c = 0; c < s.in_c; ++c)
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t k4 = 0; k4 < per_row; ++k4) dot_offset_.push_back(c * plane_bytes_ + ky * row_stride_ + 4 * k4);
  packed_.assign(static_cast<size_t>(groups_ * dots_ * kLanes), 0);
  acc0_.assign(static_cast<size_t>(groups_ * kLanes), 0);
  mul_.assign(acc0_.size(), 0.0f);
  add_.assign(acc0_.size(), 0.0f);
  const int64_t taps = s.in_c * s.kh * s.kw;
  for (int64_t o = 0; o < s.out_c; ++o) {
    const int8_t* w = wq + o * taps;
    int32_t sum = 0;
    for (int64_t c = 0; c < s.in_c; ++c)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const int8_t v = w[(c * s.kh + ky) * s.kw + kx];
          sum += v;
          const int64_t d = (c * s.kh + ky) * per_row + kx / 4;
          auto* lane = reinterpret_cast<int8_t*>(&packed_[((o / kLanes) * dots_ + d) * kLanes + o % kLanes]);
          lane[kx % 4] = v;
        }
    // Sum over (u - z_u) * w = sum u * w - z_u * sum w: start the sum there.
    acc0_[o] = -z_u * sum;
    float mul = s.input.scale * w_scale[o], add = bias[o];
    if (s.output) {
      const float inv = 1.0f / s.output->scale;
      mul *= inv;
      add = add * inv + static_cast<float>(s.output->zero_point);
    }
    mul_[o] = mul;
    add_[o] = add;
  }
}

int64_t Int8SmallConv::packed_bytes() const {
  return static_cast<int64_t>(packed_.size() * 4 + acc0_.size() * 4 + mul_.size() * 4 + add_.size() * 4);
}

void Int8SmallConv::run_sample(const float* x, uint8_t* pad_buf, void* y) const {
  const Int8SmallConvSpec& s = spec_;
  SampleArgs a{};
  a.x = x, a.buf = pad_buf, a.y = y;
  a.packed = packed_.data(), a.dot_offset = dot_offset_.data(), a.acc0 = acc0_.data(), a.mul = mul_.data(), a.add = add_.data();
  a.in_c = s.in_c, a.in_h = s.in_h, a.in_w = s.in_w, a.pad_h = s.pad_h, a.pad_w = s.pad_w;
  a.stride_h = s.stride_h, a.stride_w = s.stride_w;
  a.out_c = s.out_c, a.out_h = s.out_h(), a.out_w = s.out_w();
  a.groups = groups_, a.dots = dots_, a.row_stride = row_stride_, a.plane_bytes = plane_bytes_;
  a.in_type = s.input.dtype;
  a.out = !s.output ? Out::f32 : s.output->dtype == DType::u8 ? Out::u8 : Out::s8;
  const float none = -std::numeric_limits<float>::infinity();
  const float relu_floor = s.output ? static_cast<float>(s.output->zero_point) : 0.0f;
  const float type_floor = a.out == Out::u8 ? 0.0f : a.out == Out::s8 ? -128.0f : none;
  a.floor = s.relu ? std::max(relu_floor, type_floor) : type_floor;
  a.in_scale = s.input.scale, a.in_zero = static_cast<float>(s.input.zero_point);
  a.pad_value = pad_value_;
  run_sample_vnni(a);
}

void Int8SmallConv::run(const float* x, int64_t n, void* y) const {
  const Int8SmallConvSpec& s = spec_;
  const int64_t in_sample = s.in_c * s.in_h * s.in_w;
  const int64_t out_sample = s.out_h() * s.out_w() * s.out_c * (s.output ? 1 : 4);
  const size_t buf_bytes = static_cast<size_t>(s.in_c * plane_bytes_);
  // A sample is a few microseconds of work: waking the pool pays from about 8.
#pragma omp parallel for schedule(static) if (n >= 8 && !omp_in_parallel())
  for (int64_t i = 0; i < n; ++i) {
    static thread_local std::vector<uint8_t> buf;
    if (buf.size() < buf_bytes) buf.resize(buf_bytes);
    run_sample(x + i * in_sample, buf.data(), static_cast<char*>(y) + i * out_sample);
  }
}

}  // namespace leanai
