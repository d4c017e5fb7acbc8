// Affine quantization parameters and the per-value math every quantized path
// shares (calibrators, the quantize pass, reference kernels, ONNX export).
//
//   QuantParams p = params_for_range(-0.3f, 5.2f, DType::u8);  // scale, zero point
//   uint8_t q = quantize_u8(x, p);   float back = dequantize(q, p);   // |x - back| <= scale/2 inside the range
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "leanai/core/dtype.h"
#include "leanai/core/tensor.h"

namespace leanai {

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  DType dtype = DType::u8;  // u8 (affine) or i8 (symmetric, zero_point 0)
};

// The range is widened to include 0 (so zero is exact); u8 is affine over
// [lo, hi], i8 symmetric over max(|lo|, |hi|) with 127 levels each side.
// A zero-width range gives scale 1 (every value quantizes to the zero point).
QuantParams params_for_range(float lo, float hi, DType dtype);

inline int32_t quantize_value(float x, const QuantParams& p) {
  const int32_t lo = p.dtype == DType::u8 ? 0 : -128, hi = p.dtype == DType::u8 ? 255 : 127;
  const float q = std::nearbyint(x / p.scale) + static_cast<float>(p.zero_point);
  return static_cast<int32_t>(std::clamp(q, static_cast<float>(lo), static_cast<float>(hi)));
}
inline float dequantize_value(int32_t q, const QuantParams& p) {
  return static_cast<float>(q - p.zero_point) * p.scale;
}

// Per-output-channel symmetric int8 weights (axis 0), values in [-127, 127]:
// w[o, ...] ~= q[o, ...] * scales[o]. An all-zero channel gets scale 1.
struct QuantizedWeights {
  Tensor q;       // i8, the weight's shape
  Tensor scales;  // f32 [out]
};
QuantizedWeights quantize_weights_per_channel(const Tensor& w);

}  // namespace leanai
