#include "leanai/nn/l0_controller.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/sparse/gate_mask.h"
#include "leanai/sparse/hard_concrete.h"

namespace leanai {
namespace {

const Tensor& param_of(const Graph& g, int id) { return g.params().at(g.node(id).name).value; }

std::string gate_name(const Node& n) { return n.name.empty() ? "node " + std::to_string(n.id) : n.name; }

}  // namespace

std::vector<L0GateStats> l0_gate_stats(const Graph& g) {
  std::vector<L0GateStats> out;
  for (const Node& n : g.nodes()) {
    if (n.op != "l0_gate" || g.node(n.inputs[1]).op != "param") continue;
    const HardConcrete hc = HardConcrete::of(n);
    const Tensor& log_alpha = param_of(g, n.inputs[1]);
    L0GateStats s;
    s.name = gate_name(n);
    s.channels = log_alpha.numel();
    for (int64_t c = 0; c < s.channels; ++c) {
      const double z = hc.eval_gate(log_alpha.data<float>()[c]);
      s.closed += z == 0.0;
      s.mean_gate += z / static_cast<double>(s.channels);
    }
    if (n.inputs.size() > 2 && g.node(n.inputs[2]).op == "param") s.weight = param_of(g, n.inputs[2]).data<float>()[0];
    else s.weight = attr_float(n, "l0_weight", 0.0);
    out.push_back(s);
  }
  return out;
}

double l0_closed_share(const Graph& g) {
  int64_t closed = 0, channels = 0;
  for (const L0GateStats& s : l0_gate_stats(g)) {
    closed += s.closed;
    channels += s.channels;
  }
  return channels == 0 ? 0.0 : static_cast<double>(closed) / static_cast<double>(channels);
}

void L0Controller::update(Graph& g, double target) {
  check(target >= 0.0 && target < 1.0, "l0 controller: target sparsity must be in [0, 1), got " + std::to_string(target));
  for (const Node& n : g.nodes()) {
    if (n.op != "l0_gate") continue;
    check(n.inputs.size() > 2 && g.node(n.inputs[2]).op == "param" && g.node(n.inputs[1]).op == "param",
          "l0_gate " + gate_name(n) + ": log_alpha and l0_weight must be parameters for the controller to steer it");
    const HardConcrete hc = HardConcrete::of(n);
    float* log_alpha = g.params().at(g.node(n.inputs[1]).name).value.data<float>();
    const auto channels = static_cast<int64_t>(g.params().at(g.node(n.inputs[1]).name).value.numel());
    const int64_t k = gates_off(target, channels);
    order_.resize(channels);
    std::iota(order_.begin(), order_.end(), int64_t{0});
    std::sort(order_.begin(), order_.end(), [log_alpha](int64_t a, int64_t b) {
      return log_alpha[a] < log_alpha[b] || (log_alpha[a] == log_alpha[b] && a < b);
    });
    const double closing = hc.closed_below();
    // At most k may close: the others keep an eval gate of at least open_gate.
    const double open = hc.log_alpha_for(open_gate);
    for (int64_t i = k; i < channels; ++i) log_alpha[order_[i]] = std::max(log_alpha[order_[i]], static_cast<float>(open));
    // The multiplier: raise while the k-th gate is open, lower while the next one presses against the floor.
    double err = 0.0;
    if (k > 0 && log_alpha[order_[k - 1]] > closing) err = log_alpha[order_[k - 1]] - closing;
    else if (k < channels && log_alpha[order_[k]] < open + margin) err = (log_alpha[order_[k]] - open - margin) / margin;
    float& lambda = g.params().at(g.node(n.inputs[2]).name).value.data<float>()[0];
    double next = lambda;
    if (err > 0.0) next = std::max(next, floor);
    next *= std::exp(rate * std::clamp(err, -1.0, 1.0));
    if (err < 0.0 && next < floor) next = 0.0;
    lambda = static_cast<float>(std::min(next, ceiling));
  }
}

}  // namespace leanai
