// What the rewriting passes share: who reads each node, and copying a node
// into a new graph through a map from old node ids to new ones.
#pragma once
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

struct NodeUses {
  std::vector<int> count;  // op inputs (and the graph output) reading each node
  std::vector<int> sole;   // the one op reading it when count == 1, else -1

  // True when `id` is read by exactly one op (and is not the graph output).
  bool single(int id) const { return count[id] == 1 && sole[id] >= 0; }
};

NodeUses node_uses(const Graph& graph);

// Adds `n` to `out` (input, param or op) with inputs mapped through `remap`;
// parameters keep their tensors (shared, not copied). Returns the new id.
int copy_node(Graph& out, const Graph& g, const Node& n, const std::vector<int>& remap);

// A parameter name based on `base` that neither the source graph nor the
// graph being built uses yet.
std::string unused_param_name(const Graph& source, const Graph& built, const std::string& base);

}  // namespace leanai

namespace leanai {

// The graph without the nodes its output does not depend on (graph inputs
// stay, so callers feed the same inputs). Passes end with it, so a parameter
// they made obsolete leaves the model.
Graph prune_unreachable(const Graph& graph);

}  // namespace leanai
