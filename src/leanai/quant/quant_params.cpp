#include "leanai/quant/quant_params.h"

#include "leanai/core/error.h"

namespace leanai {

QuantParams params_for_range(float lo, float hi, DType dtype) {
  check(dtype == DType::u8 || dtype == DType::i8, "quantization: activations are u8 or i8");
  check(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "quantization: the range must be finite with min <= max");
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  QuantParams p;
  p.dtype = dtype;
  if (dtype == DType::u8) {
    p.scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    p.zero_point = static_cast<int32_t>(std::clamp(std::nearbyint(-lo / p.scale), 0.0f, 255.0f));
  } else {
    const float m = std::max(-lo, hi);
    p.scale = m > 0 ? m / 127.0f : 1.0f;
    p.zero_point = 0;
  }
  return p;
}

QuantizedWeights quantize_weights_per_channel(const Tensor& w) {
  check(w.dtype() == DType::f32 && w.shape().size() >= 2, "quantization: weights must be f32 with an output axis");
  const int64_t out = w.shape()[0], per = w.numel() / out;
  QuantizedWeights r{Tensor::empty(w.shape(), DType::i8), Tensor::empty({out})};
  const float* src = w.data<float>();
  int8_t* q = r.q.data<int8_t>();
  float* s = r.scales.data<float>();
  for (int64_t o = 0; o < out; ++o) {
    float m = 0;
    for (int64_t i = 0; i < per; ++i) m = std::max(m, std::fabs(src[o * per + i]));
    s[o] = m > 0 ? m / 127.0f : 1.0f;
    for (int64_t i = 0; i < per; ++i)
      q[o * per + i] = static_cast<int8_t>(std::clamp(std::nearbyint(src[o * per + i] / s[o]), -127.0f, 127.0f));
  }
  return r;
}

}  // namespace leanai
