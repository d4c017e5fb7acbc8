#include "leanai/nn/sparse_training.h"

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/nn/sparsity_schedule.h"
#include "leanai/sparse/gate_mask.h"
#include "leanai/sparse/input_gates.h"
#include "leanai/sparse/insert_gates.h"

namespace leanai {

json SparseTraining::to_json() const {
  json j = {{"target", target}, {"gates", gates}, {"ramp_steps", ramp_steps}};
  if (!dense_layers.empty()) j["dense_layers"] = dense_layers;
  if (gates == "l0") j["controller_rate"] = controller_.rate;
  if (gates == "input") {
    j["blocks"] = kInputGateBlocks;
    j["top_k"] = input_gate_top_k(target, kInputGateBlocks);
  }
  return j;
}

SparseTraining SparseTraining::from_json(const json& j) {
  SparseTraining s;
  try {
    s.target = j.at("target").get<double>();
    s.ramp_steps = j.at("ramp_steps").get<int64_t>();
    s.gates = j.value("gates", std::string("quantile"));
    s.controller_.rate = j.value("controller_rate", s.controller_.rate);
    s.dense_layers = j.value("dense_layers", std::set<std::string>());
  } catch (const json::exception&) {
    throw Error("the model's sparsity record is incomplete (needs target and ramp_steps); train again from the start");
  }
  return s;
}

Graph SparseTraining::gate(const Graph& model, uint64_t seed) const {
  check(target >= 0.0 && target < 1.0, "sparsity must be in [0, 1), got " + std::to_string(target));
  if (gates == "quantile") return with_gates(model, 0.0, seed, dense_layers);
  if (gates == "l0") return with_l0_gates(model, seed, dense_layers);
  check(dense_layers.empty() || gates != "input", "dense layers apply to quantile and l0 gates, not input gates");
  if (gates == "input") return with_input_gates(model, target, kInputGateBlocks, seed);
  throw Error("unknown gates '" + gates + "': use quantile, l0 or input");
}

void SparseTraining::configure(TrainConfig& config) {
  if (gates != "l0") return;
  const double steps = static_cast<double>(std::max<int64_t>(config.schedule.total > 0 ? config.schedule.total : ramp_steps, 1));
  const double lr = config.optimizer.lr;
  config.optimizer.lr_scale[".log_alpha"] = static_cast<float>(std::max<double>(kL0GateLrScale, 16.0 / (lr * steps)));
  controller_.rate = std::max(L0Controller().rate, 18.0 / steps);
}

void SparseTraining::before_step(Graph& model, int64_t step) {
  const SparsitySchedule schedule{target, ramp_steps};
  if (gates == "quantile") apply_sparsity(model, schedule.at(step));
  else if (gates == "l0") controller_.update(model, schedule.at(step));
}

void SparseTraining::finish(Graph& model) {
  if (gates == "quantile") apply_sparsity(model, target);
  // The last optimizer step may have moved an open gate toward closing: project once more.
  if (gates == "l0") controller_.update(model, target);
}

json SparseTraining::achieved(const Graph& model) const {
  json layers = json::array();
  int64_t off = 0, channels = 0;
  for (const Node& n : model.nodes()) {
    if (n.op == "block_gated_linear")
      layers.push_back({{"layer", n.name.empty() ? model.node(n.inputs[1]).name : n.name},
                        {"blocks", n.attrs.at("blocks")}, {"top_k", n.attrs.at("top_k")}});
    if (n.op != "neuron_gate") continue;
    const Tensor& g = model.params().at(model.node(n.inputs[1]).name).value;
    const double s = model.params().at(model.node(n.inputs[2]).name).value.data<float>()[0];
    const int64_t k = gates_off(s, g.numel());
    layers.push_back({{"layer", n.name}, {"channels", g.numel()}, {"off", k}});
    off += k;
    channels += g.numel();
  }
  for (const L0GateStats& s : l0_gate_stats(model)) {
    layers.push_back({{"layer", s.name}, {"channels", s.channels}, {"off", s.closed}, {"l0_weight", s.weight},
                      {"mean_gate", s.mean_gate}});
    off += s.closed;
    channels += s.channels;
  }
  json j = {{"gates", gates}, {"layers", layers}};
  if (channels > 0) j["off_share"] = static_cast<double>(off) / static_cast<double>(channels);
  return j;
}

}  // namespace leanai
