// How a q-op quantizes its f32 input (attrs.input in precision.h), shared by
// the reference kernels, the compiled Plan's dynamic mode and the quantize pass:
//
//   InputQuant iq = parse_input_quant(node);            // static params or dynamic
//   QuantParams p = iq.dynamic ? dynamic_params(x, n, iq.dtype) : iq.params;
//   quantize_to(x, n, p, out_bytes);                    // u8 or i8, saturating
#pragma once
#include <cstdint>

#include "leanai/graph/graph.h"
#include "leanai/quant/quant_params.h"

namespace leanai {

struct InputQuant {
  DType dtype = DType::u8;  // u8 or i8
  bool dynamic = false;
  QuantParams params;       // static only
};

// Reads node.attrs["input"]; throws Error naming the node when malformed.
InputQuant parse_input_quant(const Node& node);
// The attribute form of static params or of dynamic mode.
json input_quant_attr(const QuantParams& p);
json dynamic_input_attr(DType dtype);

// The batch's own params (min/max over n values, as the contract says);
// throws Error on NaN or infinity.
QuantParams dynamic_params(const float* x, int64_t n, DType dtype);
// out[i] = saturate(round(x[i] / scale) + zero_point) as u8 or i8 bytes.
void quantize_to(const float* x, int64_t n, const QuantParams& p, void* out);

}  // namespace leanai
