#include "leanai/sparse/input_gates.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/graph/shape_inference.h"

namespace leanai {
namespace {

bool is_layer_op(const std::string& op) { return op == "linear" || op == "conv2d" || op == "block_gated_linear"; }

// True when the value of `id` reaches the input of another layer.
bool reaches_layer(const Graph& g, const std::vector<std::vector<int>>& readers, int id) {
  for (int r : readers[id])
    if (is_layer_op(g.node(r).op) || reaches_layer(g, readers, r)) return true;
  return false;
}

// "fc1" for a layer named fc1 or, unnamed, with weight "fc1.weight".
std::string layer_name(const Graph& g, const Node& n) {
  if (!n.name.empty()) return n.name;
  std::string w = g.node(n.inputs[1]).name;
  return w.ends_with(".weight") ? w.substr(0, w.size() - 7) : w;
}

}  // namespace

int64_t input_gate_top_k(double sparsity, int64_t blocks) {
  check(sparsity >= 0.0 && sparsity < 1.0, "input gates: sparsity must be in [0, 1), got " + std::to_string(sparsity));
  check(blocks >= 1, "input gates: blocks must be >= 1, got " + std::to_string(blocks));
  const auto k = static_cast<int64_t>(std::llround((1.0 - sparsity) * static_cast<double>(blocks)));
  return std::clamp<int64_t>(k, 1, blocks);
}

Graph with_input_gates(const Graph& g, double sparsity, int64_t blocks, uint64_t seed) {
  const int64_t top_k = input_gate_top_k(sparsity, blocks);
  const auto& nodes = g.nodes();
  std::vector<std::vector<int>> readers(nodes.size());
  for (const Node& n : nodes)
    for (int i : n.inputs) readers[i].push_back(n.id);
  const std::vector<Shape> shapes = infer_shapes(g, 1);

  Rng rng(seed);
  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  int replaced = 0;
  for (const Node& n : nodes) {
    const bool replace = n.op == "linear" && n.id != g.output() && n.inputs.size() <= 3 && !n.attrs.contains("post_ops") &&
                         g.node(n.inputs[1]).op == "param" && shapes[n.inputs[0]].size() == 2 &&
                         shapes[n.id][1] % blocks == 0 && reaches_layer(g, readers, n.id);
    if (!replace) {
      remap[n.id] = copy_node(out, g, n, remap);
      continue;
    }
    const std::string name = layer_name(g, n);
    const int64_t in = shapes[n.inputs[0]][1], width = shapes[n.id][1];
    int bias = n.inputs.size() == 3 ? remap[n.inputs[2]] : -1;
    if (bias < 0) bias = out.add_param(unused_param_name(g, out, name + ".bias"), Tensor::zeros({width}));
    Tensor gate_weight = Tensor::empty({blocks, in});
    const float scale = 1.0f / std::sqrt(static_cast<float>(in));
    for (int64_t i = 0; i < gate_weight.numel(); ++i) gate_weight.data<float>()[i] = scale * rng.normal();
    const int gw = out.add_param(unused_param_name(g, out, name + ".gate_weight"), gate_weight);
    remap[n.id] = out.add("block_gated_linear", {remap[n.inputs[0]], remap[n.inputs[1]], bias, gw},
                          {{"blocks", blocks}, {"top_k", top_k}}, n.name);
    ++replaced;
  }
  check(replaced > 0, "input gates: the model has no hidden linear layer with [batch, features] input and a width "
                      "divisible by " + std::to_string(blocks) + " blocks; use --gates quantile or l0");
  out.set_output(remap[g.output()]);
  out.validate();
  return out;
}

double dense_flops_per_sample(const Graph& g) {
  Graph dense;
  std::vector<int> remap(g.nodes().size(), -1);
  for (const Node& n : g.nodes())
    remap[n.id] = n.op == "block_gated_linear"
                      ? dense.add("linear", {remap[n.inputs[0]], remap[n.inputs[1]], remap[n.inputs[2]]}, json::object(), n.name)
                      : copy_node(dense, g, n, remap);
  dense.set_output(remap[g.output()]);
  Graph pruned = prune_unreachable(dense);
  Executor ex(pruned);
  return ex.flops_per_sample();
}

}  // namespace leanai
