// The hard-concrete distribution of L0 gates (Louizos, Welling & Kingma 2018,
// "Learning Sparse Neural Networks through L0 Regularization"), shared by the
// l0_gate kernel, the compaction pass, the sparsity controller and the tests,
// so all of them agree on when a gate is closed.
//
// A gate with parameter log_alpha is, in training,
//   u ~ U(0, 1),  s = sigmoid((log u - log(1 - u) + log_alpha) / beta),
//   z = clamp(s * (zeta - gamma) + gamma, 0, 1)
// and at inference z = clamp(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1).
// Stretching s to (gamma, zeta) and clamping gives z exact zeros (and ones)
// with non-zero probability: a closed gate is a removable neuron.
#pragma once
#include <algorithm>
#include <cmath>

#include "leanai/graph/graph.h"

namespace leanai {

struct HardConcrete {
  double beta = 2.0 / 3.0;  // temperature
  double gamma = -0.1;      // stretch interval (gamma, zeta), gamma < 0 < 1 < zeta
  double zeta = 1.1;

  static double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

  // The deterministic gate used at inference.
  double eval_gate(double log_alpha) const {
    return std::clamp(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0.0, 1.0);
  }
  // z of a training sample for u in (0, 1); s is the unstretched sample.
  double sample_s(double log_alpha, double u) const {
    return sigmoid((std::log(u) - std::log1p(-u) + log_alpha) / beta);
  }
  double stretch(double s) const { return std::clamp(s * (zeta - gamma) + gamma, 0.0, 1.0); }
  // P(z != 0) in training: the gate's term of the expected L0 norm,
  // sigmoid(log_alpha - beta * log(-gamma / zeta)).
  double open_probability(double log_alpha) const { return sigmoid(log_alpha - beta * std::log(-gamma / zeta)); }
  // P(z == 1) in training.
  double one_probability(double log_alpha) const {
    return sigmoid(log_alpha - beta * std::log((1.0 - gamma) / (zeta - 1.0)));
  }
  // Eval z == 0 exactly when log_alpha <= this (sigmoid(log_alpha) <= -gamma / (zeta - gamma)).
  double closed_below() const { return std::log(-gamma / zeta); }
  // log_alpha whose eval gate is z (0 < z < 1).
  double log_alpha_for(double z) const {
    const double s = (z - gamma) / (zeta - gamma);
    return std::log(s / (1.0 - s));
  }

  // The node's attributes beta, gamma, zeta (defaults above); throws Error
  // unless beta > 0 and gamma < 0 < 1 < zeta.
  static HardConcrete of(const Node& l0_gate_node);
};

}  // namespace leanai
