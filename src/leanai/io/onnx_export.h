// ONNX export: writes a leanai Graph as an ONNX model (opset 13 by default)
// that ONNX Runtime runs and leanai's own importer reads back (float graphs).
//
//   LoadedModel m = load_model("fmnist-int8.leanai");
//   export_onnx(m.graph, "fmnist-int8.onnx", {});      // atomic: old file or new, never half
//
// Float ops map one to one where ONNX has the op, and expand where it does not:
//   linear -> Gemm(transB=1) (MatMul + Add when the input has more than 2 axes);
//   conv2d / linear post_ops -> separate Add / Relu / ... nodes after the layer;
//   conv2d_fused -> Conv [-> BatchNormalization] [-> Relu] [-> MaxPool];
//   gelu -> the Erf form x * (1 + erf(x / sqrt 2)) * 0.5 (opset 13 has no Gelu);
//   dropout -> nothing (inference).
// Quantized ops (quant/precision.h), in QDQ form so ONNX Runtime fuses them
// into QLinearConv / QGemm / QLinearMatMul:
//   static input  x -> QuantizeLinear(s, z) -> DequantizeLinear -> Conv / Gemm, one Q/DQ
//                 pair per (value, s, z), shared by every q-op that reads it;
//   weights       int8 initializer -> DequantizeLinear(w_scale, zero, axis 0);
//   bias          static: int32 initializer (round(b / (s * w_scale[o]))) through
//                 DequantizeLinear, as ONNX Runtime's QDQ fusion requires;
//                 dynamic: f32 (there is no static input scale);
//   dynamic u8    DynamicQuantizeLinear: the same per-batch scale and zero point
//                 as the contract, so results match. qlinear then takes ONNX
//                 Runtime's own dynamic pattern, MatMulInteger(x_u8, Wq^T) -> Cast
//                 -> Mul(s * w_scale) -> Add(b), which it fuses into int8
//                 DynamicQuantizeMatMul (a DQ -> MatMul form stays f32 there);
//                 qconv2d reads it through DequantizeLinear;
//   dynamic s8    the input stays f32 (weight-only int8): ONNX has no symmetric
//                 dynamic quantizer, and emulating one costs more nodes than it
//                 saves; outputs then differ from leanai's by the input rounding only;
//   qlinear_w4    f32 weights, dequantized at export (opset 13 has no int4 type);
//   compute=bf16 and F16/BF16-stored weights -> f32 initializers (the values
//                 are exactly the stored ones; ONNX Runtime computes in f32).
// ONNX Runtime makes a q-conv QLinearConv (a q-linear QGemm) when its output
// reaches a QuantizeLinear: the next static q-op's input Q, moved back over
// MaxPool / Flatten, with a Relu before a u8 zero-point-0 Q dropped. A conv
// whose output stays f32 (a residual add, the last layer) runs as a float op
// on dequantized values: the same numbers, without the int8 speed.
// Sparse and MoE ops (gates, moe, block_gated_linear), layernorm, losses and
// anything else are a leanai::Error naming the node and op; nothing is written.
#pragma once
#include <map>
#include <string>

#include "leanai/graph/graph.h"

namespace leanai {

struct ExportOptions {
  int opset = 13;                   // 13 to 17; the nodes written mean the same in each
  std::string output_name = "output";
  bool dynamic_batch = true;        // axis 0 is symbolic "N"; else fixed at 1
  std::map<std::string, std::string> metadata;  // model metadata_props (source, task...)
};

struct OnnxExport {
  std::string bytes;                       // the serialized ModelProto
  std::map<std::string, int> op_counts;    // ONNX op type -> nodes
  int64_t weight_bytes = 0;                // bytes of all initializers' data
};

// Builds the model in memory; throws Error naming the node for what it cannot export.
OnnxExport build_onnx_export(const Graph& graph, const ExportOptions& options);

// build_onnx_export, then an atomic write to `path`.
void export_onnx(const Graph& graph, const std::string& path, const ExportOptions& options);

}  // namespace leanai
