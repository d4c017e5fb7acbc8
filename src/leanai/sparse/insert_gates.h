// Gated layers for dynamic sparsity: a neuron_gate (kernels/gate.cpp) or an
// l0_gate (kernels/l0_gate.cpp) after a layer's output neurons, and
// with_gates / with_l0_gates, which put one after every hidden layer of an
// existing model so the presets can be trained sparse.
//
//   Graph sparse = with_gates(build_preset("mlp", {784}, 10, seed), 0.7);
//   // mlp: fc1 -> relu -> gate1 -> fc2 -> relu -> gate2 -> fc3
#pragma once
#include <set>
#include <string>

#include "leanai/core/rng.h"
#include "leanai/graph/graph.h"

namespace leanai {

struct GateParams {
  int gates = -1;     // "<prefix>.gates" [C], trainable
  int sparsity = -1;  // "<prefix>.sparsity" [1], a buffer
};

// Adds a gate's parameters: gates start at 1 plus noise of +-1e-3, so ties
// (not the data) would otherwise decide the first mask, yet every channel
// starts from the same footing. Throws Error unless 0 <= sparsity < 1.
GateParams add_gate_params(Graph& graph, const std::string& prefix, int64_t channels, double sparsity, Rng& rng);

// A copy of `model` with a neuron_gate (named gate1, gate2, ... in graph
// order) after every hidden activation (relu, leaky_relu, gelu, sigmoid,
// tanh, clip) whose value reaches the input of a linear or conv2d layer,
// directly or through pooling, dropout and flatten. The model's output layer
// is never gated. Parameters are shared with `model`, as passes do.
// `dense_layers` names hidden layers (weight parameter name minus ".weight",
// e.g. "conv1") whose outputs stay ungated; an unknown name throws Error.
Graph with_gates(const Graph& model, double sparsity, uint64_t seed = 0, const std::set<std::string>& dense_layers = {});

// The eval gate an l0_gate starts at: open, so training starts dense and the
// L0 penalty decides which neurons close.
constexpr double kL0InitialGate = 0.9;

struct L0GateParams {
  int log_alpha = -1;   // "<prefix>.log_alpha" [C], trainable
  int l0_weight = -1;   // "<prefix>.l0_weight" [1], a buffer: lambda, 0 until a controller raises it
  int l0_penalty = -1;  // "<prefix>.l0_penalty" [1], a buffer the op writes the penalty into
};

// Adds an l0_gate's parameters: log_alpha at the value whose eval gate is
// kL0InitialGate (about 1.61), plus noise of +-1e-2.
L0GateParams add_l0_gate_params(Graph& graph, const std::string& prefix, int64_t channels, Rng& rng);

// As with_gates, with an l0_gate (beta, gamma, zeta at their defaults) in
// place of each neuron_gate. Sparsity is not a parameter here: it comes from
// the L0 penalty's weight, which nn/l0_controller.h steers toward a target.
Graph with_l0_gates(const Graph& model, uint64_t seed = 0, const std::set<std::string>& dense_layers = {});

}  // namespace leanai
