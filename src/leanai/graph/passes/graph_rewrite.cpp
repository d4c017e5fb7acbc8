#include "leanai/graph/passes/graph_rewrite.h"

namespace leanai {

NodeUses node_uses(const Graph& g) {
  const size_t n = g.nodes().size();
  NodeUses u{std::vector<int>(n, 0), std::vector<int>(n, -1)};
  for (const Node& node : g.nodes())
    for (int i : node.inputs) {
      u.count[i]++;
      u.sole[i] = node.id;
    }
  if (g.output() >= 0) {
    u.count[g.output()]++;
    u.sole[g.output()] = -1;
  }
  for (size_t i = 0; i < n; ++i)
    if (u.count[i] != 1) u.sole[i] = -1;
  return u;
}

int copy_node(Graph& out, const Graph& g, const Node& n, const std::vector<int>& remap) {
  if (n.op == "input") return out.add_input(n.name, g.input_sample_shape(n.id), g.input_dtype(n.id));
  if (n.op == "param") {
    const Parameter& p = g.params().at(n.name);
    return out.add_param(n.name, p.value, p.trainable);
  }
  std::vector<int> inputs;
  for (int i : n.inputs) inputs.push_back(remap[i]);
  return out.add(n.op, inputs, n.attrs, n.name);
}

std::string unused_param_name(const Graph& source, const Graph& built, const std::string& base) {
  auto used = [&](const std::string& name) { return source.params().count(name) || built.params().count(name); };
  if (!used(base)) return base;
  for (int k = 1;; ++k) {
    std::string name = base + "." + std::to_string(k);
    if (!used(name)) return name;
  }
}

}  // namespace leanai

namespace leanai {

Graph prune_unreachable(const Graph& g) {
  const auto& nodes = g.nodes();
  std::vector<bool> live(nodes.size(), false);
  live[g.output()] = true;
  for (int id = static_cast<int>(nodes.size()) - 1; id >= 0; --id)
    if (live[id])
      for (int i : nodes[id].inputs) live[i] = true;
  for (int id : g.inputs()) live[id] = true;
  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  for (const Node& n : nodes)
    if (live[n.id]) remap[n.id] = copy_node(out, g, n, remap);
  out.set_output(remap[g.output()]);
  return out;
}

}  // namespace leanai
