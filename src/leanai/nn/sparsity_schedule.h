// Sparsity schedule for gated layers (neuron_gate): the gradual ramp of Zhu &
// Gupta 2017, "To prune, or not to prune", so the network starts dense and
// sheds neurons fastest early, while it can still adapt:
//
//   s(t) = target * (1 - (1 - min(t / ramp_steps, 1))^3)
//
//   SparsitySchedule sched{0.7, 2000};
//   trainer.before_step = [&](int64_t step) { apply_sparsity(model, sched.at(step)); };
#pragma once
#include <cstdint>

#include "leanai/graph/graph.h"

namespace leanai {

struct SparsitySchedule {
  double target = 0.0;     // final sparsity, in [0, 1)
  int64_t ramp_steps = 0;  // steps to reach it; 0 = the target from the first step

  // s(t); throws Error when target or ramp_steps is out of range.
  double at(int64_t step) const;
};

// Writes s into the sparsity buffer of every neuron_gate in `graph`, in place:
// graphs built from it (the Trainer's training graph) share the buffer.
// Throws Error unless 0 <= s < 1.
void apply_sparsity(Graph& graph, double s);

}  // namespace leanai
