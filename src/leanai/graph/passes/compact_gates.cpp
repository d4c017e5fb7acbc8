#include "leanai/graph/passes/compact_gates.h"

#include <algorithm>
#include <map>
#include <set>

#include "leanai/graph/executor.h"
#include "leanai/graph/op.h"
#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/sparse/gate_mask.h"
#include "leanai/sparse/hard_concrete.h"

namespace leanai {
namespace {

// Which rows (axis 0) and columns (axis 1) of a parameter survive, empty =
// all, and a factor per column (empty = 1) the kept ones are multiplied by.
struct Slice {
  std::vector<bool> rows, cols;
  std::vector<float> col_scale;
};

// One gate that can be compacted: its kept channels and the parameters to slice.
struct Compaction {
  std::vector<bool> keep;
  std::vector<float> scale;               // l0_gate: eval z per channel; empty for neuron_gate (0 or 1)
  std::map<int, std::vector<bool>> rows;  // param node -> kept rows (producer weight, bias, batch-norm)
  int consumer_weight = -1;
  std::vector<bool> cols;                 // kept input columns of the consumer weight
  std::vector<float> col_scale;           // the channel's z for each input column of the consumer weight
  bool homogeneous = true;                // every op from the gate to the consumer has f(z x) = z f(x) for z >= 0
};

bool is_param(const Graph& g, int id) { return g.node(id).op == "param"; }

const Tensor& param_value(const Graph& g, int id) { return g.params().at(g.node(id).name).value; }

bool is_layer(const Node& n) {
  return (n.op == "linear" || n.op == "conv2d") && (n.op != "conv2d" || attr_int(n, "groups", 1) == 1);
}

// Ops between a layer and its gate that act on each channel separately.
bool per_channel(const Node& n) {
  static const std::set<std::string> ops = {"relu", "leaky_relu", "gelu", "sigmoid", "tanh", "clip",
                                            "maxpool2d", "avgpool2d", "global_avgpool", "dropout"};
  return ops.count(n.op) > 0;
}

// Ops after the gate that also keep an off (all-zero) channel at zero.
bool keeps_zero(const Node& n) {
  static const std::set<std::string> ops = {"relu", "leaky_relu", "gelu", "tanh", "maxpool2d", "avgpool2d",
                                            "global_avgpool", "dropout"};
  if (n.op == "clip") return attr_float(n, "min", -1.0) <= 0.0 && attr_float(n, "max", 1.0) >= 0.0;
  return ops.count(n.op) > 0;
}

// Ops after the gate through which a per-channel factor z >= 0 passes
// unchanged to the consumer (positively homogeneous): f(z x) = z f(x).
bool passes_scale(const Node& n) {
  static const std::set<std::string> ops = {"relu", "leaky_relu", "maxpool2d", "avgpool2d", "global_avgpool",
                                            "dropout", "flatten"};
  return ops.count(n.op) > 0;
}

bool owned_param(const Graph& g, const NodeUses& uses, int id) { return is_param(g, id) && uses.single(id); }

// From the gate's input back to the layer that makes its channels; fills the
// rows to keep of every parameter on the way.
bool match_producer(const Graph& g, const NodeUses& uses, const std::vector<Shape>& shapes, int id, Compaction& c) {
  for (;;) {
    if (!uses.single(id)) return false;
    const Node& n = g.node(id);
    if (n.op == "batchnorm") {
      for (int k = 1; k < 5; ++k) {
        if (!owned_param(g, uses, n.inputs[k])) return false;
        c.rows[n.inputs[k]] = c.keep;
      }
    } else if (is_layer(n)) {
      if (count_add_post_ops(parse_post_ops(n)) > 0) return false;  // the residual has every channel
      if (n.op == "linear" && shapes[n.inputs[0]].size() != 2) return false;
      for (size_t k = 1; k < n.inputs.size(); ++k) {
        if (!owned_param(g, uses, n.inputs[k])) return false;
        c.rows[n.inputs[k]] = c.keep;
      }
      return true;
    } else if (!per_channel(n)) {
      return false;
    }
    id = n.inputs[0];
  }
}

// From the gate forward to the layer that reads its channels; fills the
// consumer weight's columns to keep.
bool match_consumer(const Graph& g, const NodeUses& uses, const std::vector<Shape>& shapes, int id, Compaction& c) {
  int64_t group = 1;  // input columns per channel: H * W after a flatten
  bool flattened = false;
  for (;;) {
    if (!uses.single(id)) return false;
    const Node& n = g.node(uses.sole[id]);
    if (n.inputs[0] != id) return false;
    const size_t rank = shapes[id].size();
    if (is_layer(n)) {
      if (n.op == "linear" && rank != 2) return false;
      if (!owned_param(g, uses, n.inputs[1])) return false;
      c.consumer_weight = n.inputs[1];
      for (bool on : c.keep) c.cols.insert(c.cols.end(), group, on);
      for (float z : c.scale) c.col_scale.insert(c.col_scale.end(), group, z);
      return static_cast<int64_t>(c.cols.size()) == param_value(g, n.inputs[1]).dim(1);
    }
    c.homogeneous = c.homogeneous && passes_scale(n);
    if (n.op == "flatten") {
      if (flattened || attr_int(n, "axis", 1) != 1 || (rank != 2 && rank != 4)) return false;
      if (rank == 4) group = shapes[id][2] * shapes[id][3];
      flattened = true;
    } else if (!keeps_zero(n)) {
      return false;
    }
    id = n.id;
  }
}

// Keeps the selected rows (axis 0) and columns (axis 1) of t, seen as [O, I, rest].
Tensor slice_param(const Tensor& t, const Slice& s) {
  const int64_t rows = t.dim(0), cols = t.rank() >= 2 ? t.dim(1) : 1;
  const int64_t rest = t.numel() / (rows * cols);
  auto kept = [](const std::vector<bool>& sel, int64_t n) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < n; ++i)
      if (sel.empty() || sel[i]) idx.push_back(i);
    return idx;
  };
  const std::vector<int64_t> r = kept(s.rows, rows), c = kept(s.cols, cols);
  Shape shape = t.shape();
  shape[0] = static_cast<int64_t>(r.size());
  if (t.rank() >= 2) shape[1] = static_cast<int64_t>(c.size());
  Tensor out = Tensor::empty(shape);
  const float* src = t.data<float>();
  float* dst = out.data<float>();
  for (int64_t i : r)
    for (int64_t j : c) {
      const float* from = src + (i * cols + j) * rest;
      const float factor = s.col_scale.empty() ? 1.0f : s.col_scale[j];
      for (int64_t k = 0; k < rest; ++k) *dst++ = from[k] * factor;
    }
  return out;
}

// The channels a gate keeps at inference, and for an l0_gate their eval z.
// False when the gate's parameters are not parameters (computed values).
bool gate_channels(const Graph& g, const Node& n, Compaction& c) {
  if (!is_param(g, n.inputs[1])) return false;
  const Tensor& gates = param_value(g, n.inputs[1]);
  if (n.op == "neuron_gate") {
    if (!is_param(g, n.inputs[2])) return false;
    c.keep = active_channels(gates.data<float>(), gates.numel(), param_value(g, n.inputs[2]).data<float>()[0]);
    return true;
  }
  const HardConcrete hc = HardConcrete::of(n);
  for (int64_t ch = 0; ch < gates.numel(); ++ch) {
    const float z = static_cast<float>(hc.eval_gate(gates.data<float>()[ch]));
    c.keep.push_back(z > 0.0f);
    c.scale.push_back(z);
  }
  return true;
}

bool all_ones(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float z) { return z == 1.0f; });
}

// z of the kept channels, shaped to multiply the gate's (compacted) input:
// [kept] for [N, C], [kept, 1, 1] for [N, C, H, W].
Tensor kept_scale(const Compaction& c, size_t rank) {
  std::vector<float> z;
  for (size_t ch = 0; ch < c.keep.size(); ++ch)
    if (c.keep[ch]) z.push_back(c.scale[ch]);
  const auto kept = static_cast<int64_t>(z.size());
  return Tensor::from_vector(rank == 4 ? Shape{kept, 1, 1} : Shape{kept}, z);
}

}  // namespace

Graph compact_gates(const Graph& g) {
  bool any_gate = false;
  for (const Node& n : g.nodes()) any_gate |= n.op == "neuron_gate" || n.op == "l0_gate";
  if (!any_gate) return g;

  const NodeUses uses = node_uses(g);
  const std::vector<Shape> shapes = infer_shapes(g, 1);
  std::map<int, Slice> slices;  // param node -> what survives
  std::set<int> dropped;        // gate nodes that become their input
  std::map<int, Tensor> scaled; // l0 gates that become a per-channel multiply by z
  for (const Node& n : g.nodes()) {
    if (n.op != "neuron_gate" && n.op != "l0_gate") continue;
    Compaction c;
    if (!gate_channels(g, n, c)) continue;
    const bool all_on = std::all_of(c.keep.begin(), c.keep.end(), [](bool on) { return on; });
    if (all_on && all_ones(c.scale)) {
      dropped.insert(n.id);  // nothing off, nothing scaled: an identity
      continue;
    }
    if (std::none_of(c.keep.begin(), c.keep.end(), [](bool on) { return on; })) continue;  // no zero-width layers
    if (!match_producer(g, uses, shapes, n.inputs[0], c) || !match_consumer(g, uses, shapes, n.id, c)) continue;
    // A parameter is sliced along each axis by at most one gate (chains do not overlap).
    bool clash = !slices[c.consumer_weight].cols.empty();
    for (auto& [param, keep] : c.rows) clash |= !slices[param].rows.empty();
    if (clash) continue;
    for (auto& [param, keep] : c.rows) slices[param].rows = keep;
    slices[c.consumer_weight].cols = c.cols;
    if (all_ones(c.scale)) {
      dropped.insert(n.id);
    } else if (c.homogeneous) {
      slices[c.consumer_weight].col_scale = c.col_scale;  // z folds into the consumer's input columns
      dropped.insert(n.id);
    } else {
      scaled[n.id] = kept_scale(c, shapes[n.id].size());  // e.g. tanh after the gate: z stays a multiply
    }
  }

  Graph out;
  std::vector<int> remap(g.nodes().size(), -1);
  for (const Node& n : g.nodes()) {
    auto slice = slices.find(n.id);
    auto scale = scaled.find(n.id);
    if (dropped.count(n.id)) {
      remap[n.id] = remap[n.inputs[0]];
    } else if (scale != scaled.end()) {
      const int z =
          out.add_param(unused_param_name(g, out, (n.name.empty() ? "gate" : n.name) + ".scale"), scale->second, false);
      remap[n.id] = out.add("mul", {remap[n.inputs[0]], z}, json::object(), n.name);
    } else if (slice != slices.end() && (!slice->second.rows.empty() || !slice->second.cols.empty())) {
      const Parameter& p = g.params().at(n.name);
      remap[n.id] = out.add_param(n.name, slice_param(p.value, slice->second), p.trainable);
    } else {
      remap[n.id] = copy_node(out, g, n, remap);
    }
  }
  out.set_output(remap[g.output()]);
  return prune_unreachable(out);
}

double active_flops_per_sample(const Graph& graph) {
  Graph compact = compact_gates(graph);
  Executor ex(compact);
  return ex.flops_per_sample();
}

}  // namespace leanai
