// Precisions a layer can run at, and how a quantized model is written in the
// Graph. This page is the contract between the quantize pass (which rewrites
// a float graph), the Executor's reference kernels, the compiled Plan and the
// ONNX exporter: each reads the same nodes.
//
// A quantized model is an ordinary Graph (so the model file, `leanai info`
// and every pass keep working) in which some conv2d / linear nodes are
// replaced by these ops. Values between nodes are f32 in the Graph's meaning;
// the Plan may keep them as u8/s8 in memory inside an int8 region (see below).
//
//   qlinear(x, Wq, w_scale, b, ...adds)      attrs: input, post_ops
//   qconv2d(x, Wq, w_scale, b, ...adds)      attrs: input, post_ops, and conv2d's geometry
//                                            (stride, padding, dilation, groups)
//     Wq      i8  [out, in] (qlinear) or [out, in/groups, kh, kw] (qconv2d):
//             per-output-channel symmetric, w = Wq * w_scale[o], Wq in [-127, 127]
//     w_scale f32 [out]
//     b       f32 [out] (always present; zeros when the float layer had none)
//     adds    f32 residual operands of "add" post-ops, as for conv2d / linear
//     attrs.input = {"dtype": "u8"|"s8", "scale": s, "zero_point": z}   static
//                 | {"dtype": "u8"|"s8", "dynamic": true}               per batch
//     meaning: xq = saturate(round(x / s) + z); acc = sum (xq - z) * Wq  (exact, i32)
//              y  = post_ops(acc * s * w_scale[o] + b)
//     Dynamic: s and z come from the batch's own min/max (min clamped <= 0,
//     max >= 0; u8: z = round(-min / s), s = (max - min) / 255; s8: symmetric,
//     z = 0, s = max|x| / 127) each time the node runs.
//
//   qlinear_w4(x, Wp, w_scale, b)            attrs: block (32 or 64), in (K), post_ops
//     INT4 weights for memory-bound layers: Wp u8 [out, K/2], two signed 4-bit
//     values per byte (low nibble = even column), values in [-8, 7];
//     w_scale f32 [out, K/block]; w = nibble * w_scale[o][k / block]. K must be
//     a multiple of block. Activations stay f32.
//
//   linear / conv2d with attrs.compute = "bf16": inputs and weights rounded to
//     bf16, accumulation in f32 (oneDNN bf16 where the CPU has it). Their
//     weight parameter may be stored as BF16 or F16 (then: fp16 storage).
//     A weight stored as F16 without compute = "bf16" computes in f32.
//
// int8 regions in the Plan: when a q-op's output is read only by q-ops whose
// static input parameters are all the same, the Plan writes it as u8/s8 with
// requantization folded into the output scales (no standalone quantize or
// dequantize between them). Max pooling, flatten and reshape pass u8/s8 values
// through unchanged. A quantize (f32 -> u8/s8) or dequantize appears only at
// a region's border.
#pragma once
#include <string>

namespace leanai {

enum class Precision { fp32, bf16, fp16, int8, int4 };

// "fp32", "bf16", "fp16", "int8", "int4".
const char* precision_name(Precision p);
// Inverse of precision_name; throws Error listing the valid names.
Precision precision_from_name(const std::string& name);
// Bytes per weight element as stored (int4: 0.5), for size budgets.
double precision_weight_bytes(Precision p);

}  // namespace leanai
