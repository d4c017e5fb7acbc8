// linear / conv2d with 16-bit weights or bf16 compute (quant/precision.h):
//   attrs.compute = "bf16"   inputs and weights rounded to bf16, f32 accumulation
//   weight stored BF16/F16   converted to f32 once, then the f32 kernel runs
// The Executor's reference for these; the compiled Plan lowers them to oneDNN
// bf16 where the CPU has it. Inference only: train in f32, then convert.
#pragma once
#include <memory>

#include "leanai/graph/op.h"

namespace leanai {

// Wraps a linear / conv2d kernel (before with_post_ops); costs one dtype check
// per forward when the weight is f32 and compute is not bf16.
std::unique_ptr<OpKernel> with_weight_storage(const Node& node, std::unique_ptr<OpKernel> base);

// Dtypes linear / conv2d read: the weight (input 1) may be F32, BF16 or F16.
bool layer_accepts_dtype(int input_index, DType dtype);

// True when node.attrs["compute"] is "bf16" (throws Error for other values than "f32").
bool computes_in_bf16(const Node& node);

}  // namespace leanai
