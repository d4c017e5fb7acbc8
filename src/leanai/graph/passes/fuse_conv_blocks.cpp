#include "leanai/graph/passes/fuse_conv_blocks.h"

#include <map>

#include "leanai/core/error.h"

namespace leanai {

Graph fuse_conv_blocks(const Graph& g) {
  const auto& nodes = g.nodes();
  std::vector<int> consumers(nodes.size(), 0), only_consumer(nodes.size(), -1);
  for (const Node& n : nodes)
    for (int i : n.inputs) {
      consumers[i]++;
      only_consumer[i] = n.id;
    }
  // The single consumer of `id` when it has that op and reads `id` as its
  // first input, else -1.
  auto sole = [&](int id, const std::string& op) {
    if (id < 0 || id == g.output() || consumers[id] != 1) return -1;
    const int c = only_consumer[id];
    return nodes[c].op == op && nodes[c].inputs[0] == id ? c : -1;
  };

  // Find the chains first: conv2d [-> batchnorm] -> relu [-> maxpool2d].
  struct Chain {
    int conv, bn, relu, pool;
  };
  std::map<int, Chain> chain_ending_at;  // keyed by the chain's last node
  std::vector<bool> absorbed(nodes.size(), false);
  for (const Node& n : nodes) {
    if (n.op != "conv2d") continue;
    const int bn = sole(n.id, "batchnorm");
    const int relu = sole(bn >= 0 ? bn : n.id, "relu");
    if (relu < 0) continue;
    const int pool = sole(relu, "maxpool2d");
    const Chain c{n.id, bn, relu, pool};
    const int last = pool >= 0 ? pool : relu;
    chain_ending_at[last] = c;
    for (int id : {c.conv, c.bn, c.relu, c.pool})
      if (id >= 0 && id != last) absorbed[id] = true;
  }

  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  for (const Node& n : nodes) {
    if (absorbed[n.id]) continue;
    std::vector<int> inputs;
    for (int i : n.inputs) inputs.push_back(remap[i]);
    auto chain = chain_ending_at.find(n.id);
    if (chain != chain_ending_at.end()) {
      // Emitted where the chain ends, so the batch-norm's parameters (added
      // after the convolution) already exist in the new graph.
      const Chain& c = chain->second;
      const Node& conv = nodes[c.conv];
      json attrs = conv.attrs;
      attrs["activation"] = "relu";
      std::vector<int> fused_inputs;
      for (int i : conv.inputs) fused_inputs.push_back(remap[i]);
      if (c.bn >= 0) {
        attrs["batchnorm"] = nodes[c.bn].attrs;
        for (size_t i = 1; i < nodes[c.bn].inputs.size(); ++i) fused_inputs.push_back(remap[nodes[c.bn].inputs[i]]);
      }
      if (c.pool >= 0) attrs["pool"] = nodes[c.pool].attrs;
      const int fused = out.add("conv2d_fused", fused_inputs, attrs, conv.name);
      for (int id : {c.conv, c.bn, c.relu, c.pool})
        if (id >= 0) remap[id] = fused;  // absorbed values are read by nothing else
    } else if (n.op == "input") {
      remap[n.id] = out.add_input(n.name, g.input_sample_shape(n.id), g.input_dtype(n.id));
    } else if (n.op == "param") {
      const Parameter& p = g.params().at(n.name);
      remap[n.id] = out.add_param(n.name, p.value, p.trainable);
    } else {
      remap[n.id] = out.add(n.op, inputs, n.attrs, n.name);
    }
  }
  out.set_output(remap[g.output()]);
  out.validate();
  return out;
}

}  // namespace leanai
