#include "leanai/nn/sparsity_schedule.h"

#include <algorithm>
#include <string>

#include "leanai/core/error.h"

namespace leanai {

double SparsitySchedule::at(int64_t step) const {
  if (!(target >= 0.0 && target < 1.0))
    throw Error("sparsity schedule: target must be in [0, 1), got " + std::to_string(target));
  if (ramp_steps < 0) throw Error("sparsity schedule: ramp_steps must be >= 0, got " + std::to_string(ramp_steps));
  if (ramp_steps == 0) return target;
  const double progress = std::clamp(static_cast<double>(step) / static_cast<double>(ramp_steps), 0.0, 1.0);
  const double left = 1.0 - progress;
  return target * (1.0 - left * left * left);
}

void apply_sparsity(Graph& graph, double s) {
  check(s >= 0.0 && s < 1.0, "sparsity must be in [0, 1), got " + std::to_string(s));
  for (const Node& n : graph.nodes()) {
    if (n.op != "neuron_gate") continue;
    const Node& buffer = graph.node(n.inputs[2]);
    check(buffer.op == "param", "neuron_gate node " + std::to_string(n.id) +
                                    ": its sparsity is not a parameter buffer, so it cannot be scheduled");
    graph.param(buffer.name).value.fill(static_cast<float>(s));
  }
}

}  // namespace leanai
