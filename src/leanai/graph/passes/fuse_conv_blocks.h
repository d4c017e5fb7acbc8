// Pass: conv2d [-> batchnorm] -> relu [-> maxpool2d] chains become one conv2d_fused node,
// which keeps the whole block in oneDNN's blocked layout (see kernels/conv.cpp).
//
// Safe because the fused kernel computes the same function: the same
// batch-norm (batch statistics in training, running ones in eval, the same
// running-stat update), ReLU, then the same max-pool; the intermediate values it skips are read
// by no other node (the pass only fuses single-consumer chains that do not end
// at the graph output). Parameters are shared with the input graph, not copied.
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph fuse_conv_blocks(const Graph& graph);

}  // namespace leanai
