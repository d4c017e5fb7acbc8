#include "leanai/graph/passes/fold_batchnorm.h"

#include <cmath>
#include <map>
#include <set>

#include "leanai/graph/op.h"
#include "leanai/graph/passes/graph_rewrite.h"

namespace leanai {
namespace {

struct Fold {
  int layer = -1, bn = -1;
  Tensor weight, bias;  // the folded values
};

bool is_param(const Graph& g, int id) { return g.node(id).op == "param"; }

const Tensor& param_value(const Graph& g, int id) { return g.params().at(g.node(id).name).value; }

// Folds bn into layer when the pattern is safe; returns false otherwise.
bool try_fold(const Graph& g, const NodeUses& uses, const Node& layer, Fold& fold) {
  if (layer.op != "conv2d" && layer.op != "linear") return false;
  if (layer.attrs.contains("post_ops") || !uses.single(layer.id)) return false;
  const Node& bn = g.node(uses.sole[layer.id]);
  if (bn.op != "batchnorm" || bn.inputs[0] != layer.id) return false;
  for (size_t i = 1; i < layer.inputs.size(); ++i)
    if (!is_param(g, layer.inputs[i]) || !uses.single(layer.inputs[i])) return false;
  for (size_t i = 1; i < 5; ++i)
    if (!is_param(g, bn.inputs[i])) return false;

  const Tensor& w = param_value(g, layer.inputs[1]);
  const int64_t channels = w.dim(0);
  const int64_t per_channel = w.numel() / channels;
  const float* gamma = param_value(g, bn.inputs[1]).data<float>();
  const float* beta = param_value(g, bn.inputs[2]).data<float>();
  const float* mean = param_value(g, bn.inputs[3]).data<float>();
  const float* var = param_value(g, bn.inputs[4]).data<float>();
  if (param_value(g, bn.inputs[1]).numel() != channels) return false;
  const double eps = attr_float(bn, "eps", 1e-5);

  fold.layer = layer.id;
  fold.bn = bn.id;
  fold.weight = w.clone();
  fold.bias = Tensor::zeros({channels});
  const float* old_bias = layer.inputs.size() == 3 ? param_value(g, layer.inputs[2]).data<float>() : nullptr;
  for (int64_t c = 0; c < channels; ++c) {
    const double s = gamma[c] / std::sqrt(static_cast<double>(var[c]) + eps);
    float* row = fold.weight.data<float>() + c * per_channel;
    for (int64_t k = 0; k < per_channel; ++k) row[k] = static_cast<float>(row[k] * s);
    const double b = old_bias ? old_bias[c] : 0.0;
    fold.bias.data<float>()[c] = static_cast<float>((b - mean[c]) * s + beta[c]);
  }
  return true;
}

}  // namespace

Graph fold_batchnorm(const Graph& g) {
  const NodeUses uses = node_uses(g);
  std::map<int, Fold> fold_at_bn;          // keyed by the batch-norm node
  std::map<int, const Tensor*> new_value;  // parameter node -> folded tensor
  std::set<int> folded_layers;
  for (const Node& n : g.nodes()) {
    Fold f;
    if (!try_fold(g, uses, n, f)) continue;
    auto& stored = fold_at_bn[f.bn] = f;
    folded_layers.insert(n.id);
    new_value[n.inputs[1]] = &stored.weight;
    if (n.inputs.size() == 3) new_value[n.inputs[2]] = &stored.bias;
  }

  Graph out;
  std::vector<int> remap(g.nodes().size(), -1);
  for (const Node& n : g.nodes()) {
    auto replaced = new_value.find(n.id);
    auto fold = fold_at_bn.find(n.id);
    if (replaced != new_value.end()) {
      remap[n.id] = out.add_param(n.name, *replaced->second, g.params().at(n.name).trainable);
    } else if (fold != fold_at_bn.end()) {
      // The layer is emitted here, at the batch-norm, reading the folded parameters.
      const Node& layer = g.node(fold->second.layer);
      std::vector<int> inputs = {remap[layer.inputs[0]], remap[layer.inputs[1]]};
      if (layer.inputs.size() == 3) {
        inputs.push_back(remap[layer.inputs[2]]);
      } else {
        const std::string& wname = g.node(layer.inputs[1]).name;
        const std::string stem = wname.size() > 7 && wname.ends_with(".weight") ? wname.substr(0, wname.size() - 7) : wname;
        inputs.push_back(out.add_param(unused_param_name(g, out, stem + ".bias"), fold->second.bias, true));
      }
      remap[n.id] = out.add(layer.op, inputs, layer.attrs, layer.name);
    } else if (folded_layers.count(n.id)) {
      continue;  // emitted at its batch-norm
    } else {
      remap[n.id] = copy_node(out, g, n, remap);
    }
  }
  out.set_output(remap[g.output()]);
  return prune_unreachable(out);
}

}  // namespace leanai
