#include "leanai/quant/weight_rounding.h"

#include "leanai/core/dtype.h"
#include "leanai/core/error.h"
#include "leanai/quant/int4_blocks.h"
#include "leanai/quant/quant_params.h"

namespace leanai {

Tensor round_trip_weights(const Tensor& w, Precision p, int block) {
  check(w.dtype() == DType::f32, "weight rounding: weights must be f32");
  Tensor out = Tensor::empty(w.shape());
  const float* src = w.data<float>();
  float* dst = out.data<float>();
  switch (p) {
    case Precision::fp32:
      for (int64_t i = 0; i < w.numel(); ++i) dst[i] = src[i];
      return out;
    case Precision::bf16:
      for (int64_t i = 0; i < w.numel(); ++i) dst[i] = bf16_to_f32(f32_to_bf16(src[i]));
      return out;
    case Precision::fp16:
      for (int64_t i = 0; i < w.numel(); ++i) dst[i] = f16_to_f32(f32_to_f16(src[i]));
      return out;
    case Precision::int8: {
      const QuantizedWeights q = quantize_weights_per_channel(w);
      const int64_t per = w.numel() / w.shape()[0];
      const int8_t* qd = q.q.data<int8_t>();
      const float* s = q.scales.data<float>();
      for (int64_t i = 0; i < w.numel(); ++i) dst[i] = static_cast<float>(qd[i]) * s[i / per];
      return out;
    }
    case Precision::int4:
      return dequantize_int4_blocks(quantize_int4_blocks(w, block));
  }
  return out;
}

}  // namespace leanai
