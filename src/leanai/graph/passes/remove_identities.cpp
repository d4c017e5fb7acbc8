#include "leanai/graph/passes/remove_identities.h"

#include "leanai/graph/passes/graph_rewrite.h"

namespace leanai {

Graph remove_identities(const Graph& g) {
  Graph out;
  std::vector<int> remap(g.nodes().size(), -1);
  for (const Node& n : g.nodes())
    remap[n.id] = n.op == "dropout" ? remap[n.inputs[0]] : copy_node(out, g, n, remap);
  out.set_output(remap[g.output()]);
  return prune_unreachable(out);
}

}  // namespace leanai
