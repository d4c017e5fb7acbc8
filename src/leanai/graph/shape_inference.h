// Static shapes of every node for a given batch size, from the ops' own
// prepare() (so a pass sees exactly the shapes the kernels will).
#pragma once
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

// Shape of each node's value (parameters: their own shape; inputs: the batch
// axis first). Throws the kernel's Error when the graph does not fit together.
std::vector<Shape> infer_shapes(const Graph& graph, int64_t batch);

}  // namespace leanai
