// Post-ops: elementwise activations and residual adds folded into the node
// that produces their input (conv2d, linear), as oneDNN applies them while the
// output is still in registers. The graph records them as an attribute:
//
//   conv2d(x, W, b, residual) {"post_ops": [{"op": "add"}, {"op": "relu"}]}
//
// means relu(conv(x, W, b) + residual). Each "add" consumes one extra input,
// appended after the node's own inputs in post-op order.
//
// The Executor runs such a node by composing the base kernel with the
// activation and add kernels (the reference), and refuses to train it; the
// compiled runtime hands the same list to oneDNN (to_dnnl_post_ops).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "leanai/graph/op.h"

namespace leanai {

struct PostOp {
  std::string op;    // "add", or an activation: relu, leaky_relu, gelu, sigmoid, tanh, clip
  json attrs;        // the activation's attributes (alpha, min, max)
};

// An activation as oneDNN's eltwise algorithm and its alpha/beta.
struct EltwiseForm {
  dnnl::algorithm alg;
  float alpha, beta;
};
EltwiseForm eltwise_form(const std::string& op, const json& attrs);

// Activations that can be a post-op.
bool is_fusable_activation(const std::string& op);

// Parses and checks node.attrs["post_ops"] (empty when absent).
std::vector<PostOp> parse_post_ops(const Node& node);
int count_add_post_ops(const std::vector<PostOp>& ops);

// Wraps `base` so it also applies the node's post-ops; returns `base` itself
// when the node has none. `base_max_inputs` is what the base op accepts.
std::unique_ptr<OpKernel> with_post_ops(const Node& node, std::unique_ptr<OpKernel> base, int base_max_inputs);

// The oneDNN form. `add_descs` gives the memory descriptor of each add's
// operand (in post-op order); an add whose operand has the destination's own
// descriptor may use the cheaper `sum` post-op when `sum_in_place` is set
// (the caller then makes dst alias the operand).
dnnl::post_ops to_dnnl_post_ops(const std::vector<PostOp>& ops, const std::vector<dnnl::memory::desc>& add_descs,
                                int sum_in_place_index = -1);

}  // namespace leanai
