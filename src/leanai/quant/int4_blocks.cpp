#include "leanai/quant/int4_blocks.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "leanai/core/error.h"

namespace leanai {
namespace {

inline int low_nibble(uint8_t b) { return static_cast<int8_t>(static_cast<uint8_t>(b << 4)) >> 4; }
inline int high_nibble(uint8_t b) { return static_cast<int8_t>(b) >> 4; }

inline int quantize4(float w, float scale) {
  return static_cast<int>(std::clamp(std::nearbyint(w / scale), -8.0f, 7.0f));
}

double block_error(const float* w, int64_t n, float scale) {
  double e = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(quantize4(w[i], scale)) * scale - w[i];
    e += d * d;
  }
  return e;
}

float block_scale(const float* w, int64_t n, Int4ScaleRule rule) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(w[i]));
  if (m == 0.0f) return 1.0f;  // an all-zero block: any scale is exact
  float best = m / 7.0f;
  if (rule == Int4ScaleRule::absmax) return best;
  double best_err = block_error(w, n, best);
  auto consider = [&](float s) {
    const double e = block_error(w, n, s);
    if (e < best_err) best_err = e, best = s;
  };
  for (int f = 99; f >= 80; --f) consider(m / 7.0f * static_cast<float>(f) / 100.0f);
  consider(m / 8.0f);
  return best;
}

}  // namespace

void check_int4_layout(const std::string& who, int64_t k, int64_t block, const Shape& packed, const Shape& scales) {
  check(block == 32 || block == 64, who + ": block must be 32 or 64, got " + std::to_string(block));
  check(k > 0 && k % block == 0, who + ": K (input features) = " + std::to_string(k) + " is not a multiple of block " +
                                     std::to_string(block) + "; pad the layer's inputs or use int8");
  check(packed.size() == 2 && packed[1] == k / 2,
        who + ": packed weights must be u8 [out, K/2 = " + std::to_string(k / 2) + "], got " + shape_str(packed));
  check(scales == Shape{packed[0], k / block}, who + ": scales must be f32 [out, K/block] = " +
                                                   shape_str({packed[0], k / block}) + ", got " + shape_str(scales));
}

Tensor pack_int4(const Tensor& values) {
  check(values.dtype() == DType::i8 && values.rank() == 2 && values.dim(1) % 2 == 0 && values.is_contiguous(),
        "pack_int4: expects contiguous i8 [out, K] with K even, got " + std::string(dtype_name(values.dtype())) + " " +
            shape_str(values.shape()));
  const int64_t out = values.dim(0), k = values.dim(1);
  Tensor packed = Tensor::empty({out, k / 2}, DType::u8);
  const int8_t* v = values.data<int8_t>();
  uint8_t* p = packed.data<uint8_t>();
  for (int64_t i = 0; i < out * k; ++i)
    if (v[i] < -8 || v[i] > 7)
      throw Error("pack_int4: value " + std::to_string(v[i]) + " at [" + std::to_string(i / k) + ", " +
                  std::to_string(i % k) + "] is outside [-8, 7]");
  for (int64_t i = 0; i < out * k; i += 2) p[i / 2] = static_cast<uint8_t>((v[i] & 0x0f) | ((v[i + 1] & 0x0f) << 4));
  return packed;
}

Tensor unpack_int4(const Tensor& packed) {
  check(packed.dtype() == DType::u8 && packed.rank() == 2 && packed.is_contiguous(),
        "unpack_int4: expects contiguous u8 [out, K/2], got " + std::string(dtype_name(packed.dtype())) + " " +
            shape_str(packed.shape()));
  Tensor values = Tensor::empty({packed.dim(0), packed.dim(1) * 2}, DType::i8);
  const uint8_t* p = packed.data<uint8_t>();
  int8_t* v = values.data<int8_t>();
  for (int64_t i = 0; i < packed.numel(); ++i) {
    v[2 * i] = static_cast<int8_t>(low_nibble(p[i]));
    v[2 * i + 1] = static_cast<int8_t>(high_nibble(p[i]));
  }
  return values;
}

Int4Weights quantize_int4_blocks(const Tensor& w, int64_t block, Int4ScaleRule rule) {
  check(w.dtype() == DType::f32 && w.rank() == 2, "quantize_int4_blocks: expects f32 weights [out, K], got " +
                                                      std::string(dtype_name(w.dtype())) + " " + shape_str(w.shape()));
  const int64_t out = w.dim(0), k = w.dim(1);
  check_int4_layout("quantize_int4_blocks", k, block, {out, k / 2}, {out, k / block});
  const Tensor src = w.is_contiguous() ? w : w.clone();
  Int4Weights r{Tensor::empty({out, k / 2}, DType::u8), Tensor::empty({out, k / block}), block};
  const float* x = src.data<float>();
  uint8_t* p = r.packed.data<uint8_t>();
  float* s = r.scales.data<float>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t b = 0; b < k / block; ++b) {
      const float* wb = x + o * k + b * block;
      const float scale = block_scale(wb, block, rule);
      s[o * (k / block) + b] = scale;
      uint8_t* pb = p + (o * k + b * block) / 2;
      for (int64_t i = 0; i < block; i += 2)
        pb[i / 2] = static_cast<uint8_t>((quantize4(wb[i], scale) & 0x0f) | ((quantize4(wb[i + 1], scale) & 0x0f) << 4));
    }
  return r;
}

void dequantize_int4_row(const uint8_t* packed, const float* scales, int64_t k, int64_t block, float* dst) {
  for (int64_t b = 0; b < k / block; ++b) {
    const float s = scales[b];
    const uint8_t* __restrict p = packed + b * block / 2;
    float* __restrict d = dst + b * block;
    for (int64_t i = 0; i < block / 2; ++i) {
      d[2 * i] = static_cast<float>(low_nibble(p[i])) * s;
      d[2 * i + 1] = static_cast<float>(high_nibble(p[i])) * s;
    }
  }
}

Tensor dequantize_int4_blocks(const Int4Weights& w) {
  check(w.packed.dtype() == DType::u8 && w.packed.rank() == 2 && w.scales.dtype() == DType::f32,
        "dequantize_int4_blocks: expects u8 packed weights and f32 scales");
  const int64_t out = w.packed.dim(0), k = w.packed.dim(1) * 2;
  check_int4_layout("dequantize_int4_blocks", k, w.block, w.packed.shape(), w.scales.shape());
  const Tensor p = w.packed.is_contiguous() ? w.packed : w.packed.clone();
  const Tensor s = w.scales.is_contiguous() ? w.scales : w.scales.clone();
  Tensor r = Tensor::empty({out, k});
  for (int64_t o = 0; o < out; ++o)
    dequantize_int4_row(p.data<uint8_t>() + o * k / 2, s.data<float>() + o * (k / w.block), k, w.block,
                        r.data<float>() + o * k);
  return r;
}

}  // namespace leanai
