#include "leanai/sparse/gate_mask.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "leanai/core/error.h"

namespace leanai {

int64_t gates_off(double sparsity, int64_t channels) {
  if (!(sparsity >= 0.0 && sparsity < 1.0))
    throw Error("neuron_gate: sparsity must be in [0, 1), got " + std::to_string(sparsity) +
                "; set the gate's sparsity buffer (or the schedule's target) below 1");
  const double scaled = sparsity * static_cast<double>(channels);
  const auto off = static_cast<int64_t>(std::floor(scaled + 1e-6 * std::max(scaled, 1.0)));
  return std::min(off, std::max<int64_t>(channels - 1, 0));  // s < 1 always leaves one channel on
}

void gate_mask(const float* gates, int64_t channels, int64_t off, std::vector<int64_t>& order, float* mask) {
  for (int64_t c = 0; c < channels; ++c)
    if (!std::isfinite(gates[c]))
      throw Error("neuron_gate: gate " + std::to_string(c) + " is not finite; training diverged, lower the learning rate");
  std::fill(mask, mask + channels, 1.0f);
  if (off == 0) return;
  if (static_cast<int64_t>(order.size()) < channels) order.resize(channels);
  std::iota(order.begin(), order.begin() + channels, int64_t{0});
  // A strict total order (value, then index): the k smallest are unique.
  auto smaller = [gates](int64_t a, int64_t b) { return gates[a] < gates[b] || (gates[a] == gates[b] && a < b); };
  std::nth_element(order.begin(), order.begin() + (off - 1), order.begin() + channels, smaller);
  for (int64_t i = 0; i < off; ++i) mask[order[i]] = 0.0f;
}

std::vector<bool> active_channels(const float* gates, int64_t channels, double sparsity) {
  std::vector<int64_t> order;
  std::vector<float> mask(channels);
  gate_mask(gates, channels, gates_off(sparsity, channels), order, mask.data());
  return std::vector<bool>(mask.begin(), mask.end());
}

}  // namespace leanai
