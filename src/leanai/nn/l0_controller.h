// Steers the sparsity of L0-gated layers (l0_gate, kernels/l0_gate.cpp) to a
// target share of closed neurons (eval z == 0) per layer: a target-sparsity
// constraint "k = floor(target * C) of the C gates closed" (k as for
// neuron_gate, sparse/gate_mask.h), enforced between training steps.
//
// Which gates close is learned: the L0 penalty lambda * sum_c P(z_c != 0)
// pushes every log_alpha down, the loss holds the useful ones up, so the
// least useful sink first. How many close is the constraint's job, in two
// parts, with a_(i) the i-th smallest log_alpha, t = log(-gamma / zeta) the
// value at and below which the eval gate is 0, and o the log_alpha of the
// eval gate open_gate (0.9, where with_l0_gates starts the gates):
//
//   at least k  lambda is a Lagrange-style multiplier, raised while too few
//               are closed and lowered while the next gate presses against
//               the floor below, multiplicatively (its right scale depends
//               on the loss): lambda *= exp(rate * clamp(err, -1, 1)), with
//                 a_(k) > t:             err = a_(k) - t                  (raise)
//                 a_(k+1) < o + margin:  err = (a_(k+1) - o - margin) / margin  (lower)
//                 otherwise:             err = 0                          (hold)
//               It restarts from `floor` when it must rise from 0 and drops
//               to 0 below it.
//   at most k   a projection: every gate but the k smallest is kept at or
//               above o (log_alpha is raised to it), so no more than k close
//               and the open ones stay as open as they started.
//
// Why the projection: with Adam, a gate whose penalty gradient beats its
// (noisy) loss gradient sinks at full speed whatever lambda is, a closed gate
// gets no loss gradient (z == 0) and never comes back, and in a wide layer
// one neuron matters little, so the loss barely tells the neurons apart:
// the whole layer sinks as a block before the multiplier can react.
// Measured on a 16-64-64-8 MLP with a 70% target: 83% to 100% of the gates
// closed without the projection, depending on the rate; with it, exactly
// 44 of 64, and the fashion-mnist MLP reaches the accuracy of quantile gates
// (0.855 vs 0.856 after 2 epochs at 70%). The penalty still decides which
// gates close, the constraint only how many.
//
// With a ramped target (SparsitySchedule) layers shed neurons gradually.
//
//   L0Controller ctl;
//   SparsitySchedule sched{0.7, 2000};
//   trainer.before_step = [&](int64_t step) { ctl.update(model, sched.at(step)); };
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

struct L0GateStats {
  std::string name;          // the gate node's name (or "node <id>")
  int64_t channels = 0;
  int64_t closed = 0;        // channels whose eval gate is exactly 0
  double weight = 0.0;       // lambda
  double mean_gate = 0.0;    // mean eval z over the channels
};

// Per l0_gate of `graph` (parameters log_alpha and, when present, l0_weight).
std::vector<L0GateStats> l0_gate_stats(const Graph& graph);
// Closed channels over all l0_gate channels (0 when there are none).
double l0_closed_share(const Graph& graph);

class L0Controller {
 public:
  double rate = 0.02;      // log-lambda change per step at a gap of one log_alpha unit
  double floor = 1e-2;     // lambda restarts here when it must rise from 0
  double ceiling = 1e3;    // lambda never exceeds this
  double open_gate = 0.9;  // no gate but the k smallest falls below this eval gate
  double margin = 0.25;    // log_alpha units above that floor within which lambda is lowered

  // Projects the log_alpha and updates the l0_weight buffer of every l0_gate
  // in `graph` for a target share of closed channels, in place (the
  // Trainer's training graph shares them). Throws Error unless
  // 0 <= target < 1, or when a gate's log_alpha or l0_weight is not a parameter.
  void update(Graph& graph, double target);

 private:
  std::vector<int64_t> order_;  // scratch, reused across steps
};

}  // namespace leanai
