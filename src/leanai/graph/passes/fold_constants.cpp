#include "leanai/graph/passes/fold_constants.h"

#include "leanai/graph/op.h"
#include "leanai/graph/passes/graph_rewrite.h"

namespace leanai {
namespace {

bool foldable(const Node& n, const std::vector<bool>& constant) {
  if (n.op == "input" || n.op == "param" || n.op == "dropout" || n.inputs.empty()) return false;
  for (int i : n.inputs)
    if (!constant[i]) return false;
  return true;
}

}  // namespace

Graph fold_constants(const Graph& g) {
  const auto& nodes = g.nodes();
  std::vector<bool> constant(nodes.size(), false);
  std::vector<Tensor> value(nodes.size());
  Graph out;
  std::vector<int> remap(nodes.size(), -1);
  for (const Node& n : nodes) {
    if (n.op == "param") {
      constant[n.id] = true;
      value[n.id] = g.params().at(n.name).value;
    } else if (foldable(n, constant)) {
      std::unique_ptr<OpKernel> kernel = find_op(n.op).make(n);
      std::vector<Shape> shapes;
      Inputs in;
      for (int i : n.inputs) {
        shapes.push_back(value[i].shape());
        in.push_back(&value[i]);
      }
      Tensor result = Tensor::empty(kernel->prepare(shapes, false), kernel->out_dtype());
      RunContext ctx;
      kernel->forward(in, result, ctx);
      constant[n.id] = true;
      value[n.id] = result;
      if (result.dtype() == DType::f32) {
        const std::string base = n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name;
        remap[n.id] = out.add_param(unused_param_name(g, out, base + ".folded"), result, false);
        continue;
      }
      constant[n.id] = false;  // a parameter must be f32: leave this one to run
    }
    remap[n.id] = copy_node(out, g, n, remap);
  }
  out.set_output(remap[g.output()]);
  return prune_unreachable(out);
}

}  // namespace leanai
