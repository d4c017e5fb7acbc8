// Pass (inference): a batch-norm that reads only a conv2d or linear output
// (with its running statistics, as in inference) is folded into that layer's
// weights: W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps),
// per output channel. One kernel then does the work of two.
//
// Safe because inference batch-norm is a per-channel affine map, which
// commutes into the layer's output channels exactly (up to float rounding,
// ~1e-6 relative). Only layers whose weights and bias are parameters read by
// that layer alone are folded, so no other reader sees changed weights.
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph fold_batchnorm(const Graph& graph);

}  // namespace leanai
