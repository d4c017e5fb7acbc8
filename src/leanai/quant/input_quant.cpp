#include "leanai/quant/input_quant.h"

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"

namespace leanai {

InputQuant parse_input_quant(const Node& node) {
  const std::string where = node.op + " '" + node.name + "': attribute 'input'";
  check(node.attrs.contains("input") && node.attrs["input"].is_object(),
        where + " is missing; it must be {\"dtype\": \"u8\"|\"s8\", \"scale\": s, \"zero_point\": z} or "
                "{\"dtype\": ..., \"dynamic\": true}");
  const json& a = node.attrs["input"];
  const std::string dtype = a.value("dtype", "");
  check(dtype == "u8" || dtype == "s8", where + ": dtype must be \"u8\" or \"s8\", got \"" + dtype + "\"");
  InputQuant iq;
  iq.dtype = dtype == "u8" ? DType::u8 : DType::i8;
  iq.params.dtype = iq.dtype;
  if (a.contains("dynamic")) {
    check(a["dynamic"].is_boolean(), where + ": 'dynamic' must be true or false");
    iq.dynamic = a["dynamic"].get<bool>();
  }
  if (iq.dynamic) return iq;
  check(a.contains("scale") && a["scale"].is_number() && a.contains("zero_point") && a["zero_point"].is_number_integer(),
        where + ": static params need a number 'scale' and an integer 'zero_point'");
  iq.params.scale = a["scale"].get<float>();
  iq.params.zero_point = a["zero_point"].get<int32_t>();
  check(std::isfinite(iq.params.scale) && iq.params.scale > 0, where + ": scale must be finite and > 0");
  const int32_t z = iq.params.zero_point;
  check(iq.dtype == DType::u8 ? (z >= 0 && z <= 255) : z == 0,
        where + ": zero_point must be in [0, 255] for u8 and 0 for s8 (symmetric), got " + std::to_string(z));
  return iq;
}

json input_quant_attr(const QuantParams& p) {
  return {{"dtype", p.dtype == DType::u8 ? "u8" : "s8"}, {"scale", p.scale}, {"zero_point", p.zero_point}};
}

json dynamic_input_attr(DType dtype) { return {{"dtype", dtype == DType::u8 ? "u8" : "s8"}, {"dynamic", true}}; }

QuantParams dynamic_params(const float* x, int64_t n, DType dtype) {
  float lo = 0.0f, hi = 0.0f;  // the range always includes 0
  float probe = 0.0f;          // x * 0 is NaN exactly for NaN and infinity, which min/max would skip
  // The reduction clauses let the compiler use min/max vector instructions.
#pragma omp simd reduction(min : lo) reduction(max : hi) reduction(+ : probe)
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    probe += x[i] * 0.0f;
  }
  check(probe == 0.0f, "dynamic quantization: the input holds NaN or infinity");
  return params_for_range(lo, hi, dtype);
}

// Division, not a multiply by 1/s: bit-equal to quantize_value at ties.
void quantize_to(const float* x, int64_t n, const QuantParams& p, void* out) {
  const float s = p.scale, z = static_cast<float>(p.zero_point);
  if (p.dtype == DType::u8) {
    uint8_t* __restrict o = static_cast<uint8_t*>(out);
    for_chunks(n, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(x[i] / s) + z, 0.0f, 255.0f));
    });
  } else {
    int8_t* __restrict o = static_cast<int8_t*>(out);
    for_chunks(n, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = static_cast<int8_t>(std::clamp(std::nearbyint(x[i] / s) + z, -128.0f, 127.0f));
    });
  }
}

}  // namespace leanai
