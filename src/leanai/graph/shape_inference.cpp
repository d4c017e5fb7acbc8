#include "leanai/graph/shape_inference.h"

#include "leanai/graph/op.h"

namespace leanai {

std::vector<Shape> infer_shapes(const Graph& graph, int64_t batch) {
  std::vector<Shape> shapes(graph.nodes().size());
  for (const Node& n : graph.nodes()) {
    if (n.op == "input") {
      shapes[n.id] = {batch};
      for (int64_t d : graph.input_sample_shape(n.id)) shapes[n.id].push_back(d);
    } else if (n.op == "param") {
      shapes[n.id] = graph.params().at(n.name).value.shape();
    } else {
      std::vector<Shape> in;
      for (int i : n.inputs) in.push_back(shapes[i]);
      shapes[n.id] = find_op(n.op).make(n)->prepare(in, false);
    }
  }
  return shapes;
}

}  // namespace leanai
