// Pass (inference): turns the neurons a neuron_gate or l0_gate switches off
// into work not done. For each gate it computes which channels are off (a
// neuron_gate's mask, the rule of sparse/gate_mask.h, as in training; an
// l0_gate's eval z == 0, sparse/hard_concrete.h), removes them from the
// layer that produces them and from the layer that reads them, and drops the
// gate. Multiplying by a mask saves nothing; smaller kernels do.
//
// An l0_gate also scales its open channels by their eval z, 0 < z <= 1.
// When every op between the gate and the consumer is positively homogeneous
// (relu, leaky_relu, pooling, dropout, flatten: f(z x) = z f(x) for z >= 0),
// z is folded into the consumer's input columns (or input channels) of that
// channel; otherwise (gelu, tanh, clip after the gate) the gate becomes a
// per-channel `mul` by the kept channels' z (parameter "<gate>.scale").
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
// sparsity 0 (everything on), or an l0_gate with every z == 1, is an
// identity and is always dropped; an l0_gate with every z == 0 stays (it
// would leave zero-width layers).
//
// Safe because an off channel is exactly 0 after the gate and stays 0 up to
// the consumer, so its weights there multiply zeros; the producer's rows for
// it only fed that channel; and a folded z multiplies the same products
// (consumer weight times z times input) in another order. Outputs match the
// gated graph (in eval mode) up to float rounding (< 1e-5 on values of order 1).
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph compact_gates(const Graph& graph);

// Forward FLOPs per sample of `graph` after compact_gates: the work a gated
// model really does at inference (the gated graph's own flops count the
// switched-off neurons as if they ran).
double active_flops_per_sample(const Graph& graph);

}  // namespace leanai
