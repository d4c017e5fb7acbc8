#include "leanai/graph/passes/fuse_post_ops.h"

#include <map>

#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/kernels/post_ops.h"

namespace leanai {
namespace {

// conv2d and linear accept two (see their registration); the compiled runtime
// fuses one, so a second add stays an op of its own.
constexpr int kMaxFusedAdds = 1;

struct Chain {
  int layer = -1;
  std::vector<int> absorbed;  // post-op nodes, in order
  json post_ops = json::array();
  std::vector<int> add_operands;
};

}  // namespace

Graph fuse_post_ops(const Graph& g) {
  const NodeUses uses = node_uses(g);
  // Batch 2, so a broadcast over a batch of one cannot pass for equal shapes.
  const std::vector<Shape> shapes = infer_shapes(g, 2);
  std::map<int, Chain> chain_ending_at;
  std::vector<bool> absorbed(g.nodes().size(), false);
  std::vector<bool> taken(g.nodes().size(), false);  // already in some chain

  for (const Node& n : g.nodes()) {
    if ((n.op != "conv2d" && n.op != "linear") || taken[n.id]) continue;
    Chain c;
    c.layer = n.id;
    c.post_ops = n.attrs.value("post_ops", json::array());
    int adds = count_add_post_ops(parse_post_ops(n));
    int tail = n.id;
    while (uses.single(tail)) {
      const Node& next = g.node(uses.sole[tail]);
      if (taken[next.id]) break;
      if (is_fusable_activation(next.op) && next.inputs[0] == tail) {
        c.post_ops.push_back({{"op", next.op}, {"attrs", next.attrs}});
      } else if (next.op == "add" && adds < kMaxFusedAdds && next.inputs[0] != next.inputs[1]) {
        const int other = next.inputs[0] == tail ? next.inputs[1] : next.inputs[0];
        if (shapes[other] != shapes[tail]) break;
        c.post_ops.push_back({{"op", "add"}});
        c.add_operands.push_back(other);
        ++adds;
      } else {
        break;
      }
      c.absorbed.push_back(next.id);
      tail = next.id;
    }
    if (c.absorbed.empty()) continue;
    taken[n.id] = absorbed[n.id] = true;
    for (int id : c.absorbed) taken[id] = absorbed[id] = true;
    absorbed[tail] = false;  // the chain is emitted at its last node
    chain_ending_at[tail] = c;
  }

  Graph out;
  std::vector<int> remap(g.nodes().size(), -1);
  for (const Node& n : g.nodes()) {
    auto chain = chain_ending_at.find(n.id);
    if (chain == chain_ending_at.end()) {
      if (!absorbed[n.id]) remap[n.id] = copy_node(out, g, n, remap);
      continue;
    }
    const Chain& c = chain->second;
    const Node& layer = g.node(c.layer);
    std::vector<int> inputs;
    for (int i : layer.inputs) inputs.push_back(remap[i]);
    for (int i : c.add_operands) inputs.push_back(remap[i]);
    json attrs = layer.attrs;
    attrs["post_ops"] = c.post_ops;
    const int fused = out.add(layer.op, inputs, attrs, layer.name);
    remap[c.layer] = fused;
    for (int id : c.absorbed) remap[id] = fused;
  }
  out.set_output(remap[g.output()]);
  return prune_unreachable(out);
}

}  // namespace leanai
