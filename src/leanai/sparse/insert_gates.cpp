#include "leanai/sparse/insert_gates.h"

#include <functional>
#include <set>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/graph/layer_name.h"
#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/sparse/hard_concrete.h"

namespace leanai {
namespace {

bool is_activation(const std::string& op) {
  static const std::set<std::string> ops = {"relu", "leaky_relu", "gelu", "sigmoid", "tanh", "clip"};
  return ops.count(op) > 0;
}

// Ops between a hidden activation and the next layer that keep its channels.
bool keeps_channels(const std::string& op) {
  static const std::set<std::string> ops = {"maxpool2d", "avgpool2d", "global_avgpool", "dropout", "flatten"};
  return ops.count(op) > 0;
}

// True when `id`'s value reaches input 0 of a linear or conv2d through
// channel-keeping ops only: it feeds a hidden layer.
bool feeds_layer(const Graph& g, const std::vector<std::vector<int>>& readers, int id) {
  for (int r : readers[id]) {
    const Node& n = g.node(r);
    if ((n.op == "linear" || n.op == "conv2d") && n.inputs[0] == id) return true;
    if (keeps_channels(n.op) && feeds_layer(g, readers, r)) return true;
  }
  return false;
}

bool is_gate(const std::string& op) { return op == "neuron_gate" || op == "l0_gate"; }

// The layer whose neurons the activation `id` passes on: back along input 0
// through ops that keep channels one to one (batch norm, dropout), to a
// linear or conv2d (named as graph/layer_name.h says).
std::string producing_layer(const Graph& g, int id) {
  static const std::set<std::string> per_channel = {"relu", "leaky_relu", "gelu", "sigmoid", "tanh", "clip",
                                                    "batchnorm", "dropout"};
  for (const Node* n = &g.node(id); !n->inputs.empty(); n = &g.node(n->inputs[0])) {
    if (n->op == "linear" || n->op == "conv2d") return layer_name(g, *n);
    if (!per_channel.count(n->op)) return "";
  }
  return "";
}

// True when some parameter of `g` is named "<prefix>.<anything>".
bool prefix_taken(const Graph& g, const std::string& prefix) {
  auto it = g.params().lower_bound(prefix + ".");
  return it != g.params().end() && it->first.starts_with(prefix + ".");
}

// Adds a gate after the node `input` (channels at axis 1) and returns its id.
using MakeGate = std::function<int(Graph& out, const std::string& prefix, int64_t channels, int input, Rng& rng)>;

// A copy of `g` with a gate from `make` after every hidden activation that
// feeds a layer, except those of `dense_layers` (see with_gates).
Graph gate_hidden_activations(const Graph& g, uint64_t seed, const std::set<std::string>& dense_layers, const MakeGate& make) {
  const auto& nodes = g.nodes();
  std::vector<std::vector<int>> readers(nodes.size());
  for (const Node& n : nodes)
    for (int i : n.inputs) readers[i].push_back(n.id);
  const std::vector<Shape> shapes = infer_shapes(g, 1);

  Rng rng(seed);
  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  int next_gate = 1;
  std::set<std::string> hidden, kept;
  for (const Node& n : nodes) {
    remap[n.id] = copy_node(out, g, n, remap);
    if (!is_activation(n.op) || n.id == g.output() || !feeds_layer(g, readers, n.id)) continue;
    const bool already_gated = readers[n.id].size() == 1 && is_gate(nodes[readers[n.id][0]].op);
    const size_t rank = shapes[n.id].size();
    if (already_gated || (rank != 2 && rank != 4)) continue;
    const std::string layer = producing_layer(g, n.id);
    if (!layer.empty()) hidden.insert(layer);
    if (dense_layers.count(layer)) {
      kept.insert(layer);
      continue;
    }
    std::string prefix;
    do prefix = "gate" + std::to_string(next_gate++);
    while (prefix_taken(g, prefix));
    remap[n.id] = make(out, prefix, shapes[n.id][1], remap[n.id], rng);
  }
  for (const std::string& name : dense_layers) {
    if (kept.count(name)) continue;
    std::string known;
    for (const std::string& h : hidden) known += (known.empty() ? "" : ", ") + h;
    throw Error("dense layers (--dense-layers): '" + name + "' is not a hidden layer of this model (its hidden layers: " + known + ")");
  }
  out.set_output(remap[g.output()]);
  out.validate();
  return out;
}

}  // namespace

GateParams add_gate_params(Graph& graph, const std::string& prefix, int64_t channels, double sparsity, Rng& rng) {
  check(sparsity >= 0.0 && sparsity < 1.0, "gate: sparsity must be in [0, 1), got " + std::to_string(sparsity));
  check(channels >= 1, "gate: the gated layer has no channels");
  Tensor gates = Tensor::empty({channels});
  float* p = gates.data<float>();
  for (int64_t c = 0; c < channels; ++c) p[c] = 1.0f + rng.uniform(-1e-3f, 1e-3f);
  GateParams ids;
  ids.gates = graph.add_param(prefix + ".gates", gates);
  ids.sparsity = graph.add_param(prefix + ".sparsity", Tensor::full({1}, static_cast<float>(sparsity)), false);
  return ids;
}

Graph with_gates(const Graph& g, double sparsity, uint64_t seed, const std::set<std::string>& dense_layers) {
  check(sparsity >= 0.0 && sparsity < 1.0, "gate: sparsity must be in [0, 1), got " + std::to_string(sparsity));
  return gate_hidden_activations(g, seed, dense_layers, [sparsity](Graph& out, const std::string& prefix, int64_t channels, int x, Rng& rng) {
    const GateParams p = add_gate_params(out, prefix, channels, sparsity, rng);
    return out.add("neuron_gate", {x, p.gates, p.sparsity}, json::object(), prefix);
  });
}

L0GateParams add_l0_gate_params(Graph& graph, const std::string& prefix, int64_t channels, Rng& rng) {
  check(channels >= 1, "l0 gate: the gated layer has no channels");
  const double open = HardConcrete().log_alpha_for(kL0InitialGate);
  Tensor log_alpha = Tensor::empty({channels});
  float* p = log_alpha.data<float>();
  for (int64_t c = 0; c < channels; ++c) p[c] = static_cast<float>(open) + rng.uniform(-1e-2f, 1e-2f);
  L0GateParams ids;
  ids.log_alpha = graph.add_param(prefix + ".log_alpha", log_alpha);
  ids.l0_weight = graph.add_param(prefix + ".l0_weight", Tensor::zeros({1}), false);
  ids.l0_penalty = graph.add_param(prefix + ".l0_penalty", Tensor::zeros({1}), false);
  return ids;
}

Graph with_l0_gates(const Graph& g, uint64_t seed, const std::set<std::string>& dense_layers) {
  return gate_hidden_activations(g, seed, dense_layers, [](Graph& out, const std::string& prefix, int64_t channels, int x, Rng& rng) {
    const L0GateParams p = add_l0_gate_params(out, prefix, channels, rng);
    return out.add("l0_gate", {x, p.log_alpha, p.l0_weight, p.l0_penalty}, json::object(), prefix);
  });
}

}  // namespace leanai
