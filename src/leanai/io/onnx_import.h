// ONNX import: turns an ONNX model (opsets 11 to 17, as PyTorch exports MLPs,
// CNNs and ResNet-style nets) into a plain leanai Graph, one leanai op per
// ONNX op where possible and no performance fusion (passes do that later).
//
//   OnnxModel m = import_onnx_file("resnet.onnx");
//   save_model("resnet.leanai", m.graph, {{"source", m.source}});
//
// What happens to the ONNX graph:
//   - initializers become parameters under their ONNX names (sanitized);
//     batch-norm running statistics and folded constants are non-trainable;
//   - Constant nodes and shape arithmetic (Shape, Gather, Slice, Concat,
//     Unsqueeze, Cast, arithmetic on constant tensors...) fold at import;
//   - DequantizeLinear of constant int8 weights folds into f32 parameters
//     (QDQ on the model's data, i.e. int8 activations, is an error);
//   - Identity, Dropout (inference) and Cast-to-float vanish;
//   - Gemm and MatMul(+Add) with constant weights become linear, the Erf form
//     of GELU (any of PyTorch's orderings) becomes gelu, Squeeze/Unsqueeze/
//     Reshape become reshape, a zero Pad becomes the padding of the Conv or
//     AveragePool it feeds;
//   - the model's one input keeps its first axis as the batch axis (fixed or
//     symbolic in the file; any batch size runs after import), and every
//     value in the graph must keep the batch as its first axis.
// Anything else is a leanai::Error naming the file, and the node and operator
// at fault: never a partial graph.
#pragma once
#include <string>

#include "leanai/graph/graph.h"

namespace leanai {

struct OnnxModel {
  Graph graph;
  // {"format": "onnx", "file", "producer", "producer_version", "ir_version",
  //  "opset", "graph_name", "input", "output", "onnx_nodes"}: provenance for
  // the model file's info.
  json source;
};

// Reads and converts a .onnx file (gzip-compressed files are read too).
OnnxModel import_onnx_file(const std::string& path);
// The same from serialized ModelProto bytes; `label` names it in errors.
OnnxModel import_onnx_bytes(const std::string& bytes, const std::string& label);

inline Graph import_onnx(const std::string& path) { return import_onnx_file(path).graph; }

// The ONNX operator types the importer understands (for help texts and errors).
const std::vector<std::string>& onnx_supported_ops();

}  // namespace leanai
