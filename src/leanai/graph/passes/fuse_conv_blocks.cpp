#include "leanai/graph/passes/fuse_conv_blocks.h"

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
  // The single consumer of `id` when it has that op, else -1.
  auto sole = [&](int id, const std::string& op) {
    if (id == g.output() || consumers[id] != 1) return -1;
    const int c = only_consumer[id];
    return nodes[c].op == op && nodes[c].inputs.size() == 1 ? c : -1;
  };

  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  std::vector<bool> absorbed(nodes.size(), false);
  for (const Node& n : nodes) {
    if (absorbed[n.id]) continue;
    std::vector<int> inputs;
    for (int i : n.inputs) inputs.push_back(remap[i]);
    if (n.op == "input") {
      remap[n.id] = out.add_input(n.name, g.input_sample_shape(n.id), g.input_dtype(n.id));
    } else if (n.op == "param") {
      const Parameter& p = g.params().at(n.name);
      remap[n.id] = out.add_param(n.name, p.value, p.trainable);
    } else if (n.op == "conv2d" && sole(n.id, "relu") >= 0) {
      const int relu = sole(n.id, "relu");
      const int pool = sole(relu, "maxpool2d");
      json attrs = n.attrs;
      attrs["activation"] = "relu";
      absorbed[relu] = true;
      int last = relu;
      if (pool >= 0) {
        attrs["pool"] = nodes[pool].attrs;
        absorbed[pool] = true;
        last = pool;
      }
      remap[last] = out.add("conv2d_fused", inputs, attrs, n.name);
      remap[n.id] = remap[relu] = remap[last];  // absorbed values are read by nothing else
    } else {
      remap[n.id] = out.add(n.op, inputs, n.attrs, n.name);
    }
  }
  out.set_output(remap[g.output()]);
  out.validate();
  return out;
}

}  // namespace leanai
