// Pass (inference): turns the neurons a neuron_gate switches off into work
// not done. For each gate it computes the mask (the rule of
// sparse/gate_mask.h, as in training), removes the off channels from the
// layer that produces them and from the layer that reads them, and drops the
// gate. Multiplying by a mask saves nothing; smaller kernels do.
//
// Supported pattern (anything else leaves that gate in place, and the pass
// goes on with the others):
//
//   producer  linear (2-D input) or conv2d (groups 1) whose weight and bias
//             are parameters it alone reads, without residual-add post-ops:
//             its weight rows / output channels and bias are sliced
//   then      any of batchnorm (parameter gamma, beta and running statistics,
//             sliced too), elementwise activations, max / average / global
//             average pooling, dropout
//   the gate  gates and sparsity are parameters
//   then      any of relu, leaky_relu, gelu, tanh, clip with min <= 0 <= max,
//             pooling, dropout (ops that keep an off channel at exactly 0),
//             and at most one flatten (axis 1)
//   consumer  linear (2-D input) or conv2d (groups 1) reading it as input 0,
//             its weight a parameter it alone reads: its input columns (after
//             a flatten, the H*W column group of each channel) or input
//             channels are sliced
//
// Every node on the chain must be read only by the next one. A gate with
// sparsity 0 (everything on) is an identity and is always dropped.
//
// Safe because an off channel is exactly 0 after the gate and stays 0 up to
// the consumer, so its weights there multiply zeros; the producer's rows for
// it only fed that channel. Outputs match the gated graph up to float
// summation order (< 1e-5 on values of order 1).
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph compact_gates(const Graph& graph);

// Forward FLOPs per sample of `graph` after compact_gates: the work a gated
// model really does at inference (the gated graph's own flops count the
// switched-off neurons as if they ran).
double active_flops_per_sample(const Graph& graph);

}  // namespace leanai
