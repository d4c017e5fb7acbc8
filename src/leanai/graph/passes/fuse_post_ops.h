// Pass (inference): activations and residual adds that follow a conv2d or
// linear become that node's post-ops (see kernels/post_ops.h), so the
// compiled runtime applies them while the layer's output is in registers,
// with no pass over memory of their own:
//
//   conv2d -> add(., shortcut) -> relu     becomes   conv2d{post_ops: [add, relu]}(x, W, b, shortcut)
//
// Safe because the post-ops compute the same function in the same order; the
// values skipped are read by no other node (only single-reader chains fuse,
// and never past the graph output). An add fuses only when its other operand
// has exactly the output's shape (no broadcasting). The fused node is emitted
// where its chain ends, so the shortcut operand already exists there.
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph fuse_post_ops(const Graph& graph);

}  // namespace leanai
