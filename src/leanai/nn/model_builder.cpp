#include "leanai/nn/model_builder.h"

#include <cmath>

#include "leanai/core/error.h"
#include "leanai/graph/executor.h"
#include "leanai/sparse/insert_gates.h"

namespace leanai {

ModelBuilder::ModelBuilder(const Shape& sample_shape, uint64_t seed) : rng_(seed), shape_(sample_shape) {
  current_ = graph_.add_input("input", sample_shape);
}

// Numbered per kind (conv1, conv2, fc1, ...): the reference models then carry
// the same parameter names as their PyTorch twins' state_dicts.
std::string ModelBuilder::next_name(const std::string& kind) { return kind + std::to_string(++count_per_kind_[kind]); }

int ModelBuilder::add_uniform_param(const std::string& name, const Shape& shape, float bound) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng_.uniform(-bound, bound);
  return graph_.add_param(name, t);
}

// Adds the op and infers the new sample shape by preparing its kernel at batch 1.
void ModelBuilder::append(const std::string& op, std::vector<int> inputs, json attrs) {
  inputs.insert(inputs.begin(), current_);
  current_ = graph_.add(op, inputs, std::move(attrs));
  std::vector<Shape> in_shapes;
  for (int id : inputs) {
    const Node& n = graph_.node(id);
    if (n.op == "param") {
      in_shapes.push_back(graph_.params().at(n.name).value.shape());
    } else {
      Shape s = id == inputs[0] ? shape_ : graph_.input_sample_shape(id);
      s.insert(s.begin(), 1);
      in_shapes.push_back(s);
    }
  }
  Shape out = find_op(op).make(graph_.node(current_))->prepare(in_shapes, false);
  shape_.assign(out.begin() + 1, out.end());
}

ModelBuilder& ModelBuilder::linear(int64_t out, bool bias) {
  check(shape_.size() == 1, "linear needs a flat input; add 'flatten' before it (input is " + shape_str(shape_) + ")");
  check(out >= 1, "linear: 'out' must be >= 1");
  const std::string name = next_name("fc");
  const float bound = 1.0f / std::sqrt(static_cast<float>(shape_[0]));
  std::vector<int> params = {add_uniform_param(name + ".weight", {out, shape_[0]}, bound)};
  if (bias) params.push_back(add_uniform_param(name + ".bias", {out}, bound));
  append("linear", params, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::conv2d(int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                                   int64_t dilation, int64_t groups, bool bias) {
  check(shape_.size() == 3, "conv2d needs a [C, H, W] input, got " + shape_str(shape_));
  check(out_channels >= 1 && kernel >= 1 && groups >= 1 && shape_[0] % groups == 0 && out_channels % groups == 0,
        "conv2d: out channels and kernel must be >= 1 and channels divisible by groups");
  const std::string name = next_name("conv");
  const int64_t in_per_group = shape_[0] / groups;
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_per_group * kernel * kernel));
  std::vector<int> params = {add_uniform_param(name + ".weight", {out_channels, in_per_group, kernel, kernel}, bound)};
  if (bias) params.push_back(add_uniform_param(name + ".bias", {out_channels}, bound));
  append("conv2d", params,
         {{"stride", {stride, stride}}, {"padding", {padding, padding}}, {"dilation", {dilation, dilation}}, {"groups", groups}});
  return *this;
}

ModelBuilder& ModelBuilder::batchnorm(double eps, double momentum) {
  check(shape_.size() == 1 || shape_.size() == 3, "batchnorm needs a [C] or [C, H, W] input, got " + shape_str(shape_));
  const std::string name = next_name("bn");
  const int64_t c = shape_[0];
  std::vector<int> params = {graph_.add_param(name + ".weight", Tensor::full({c}, 1.0f)),
                             graph_.add_param(name + ".bias", Tensor::zeros({c})),
                             graph_.add_param(name + ".running_mean", Tensor::zeros({c}), false),
                             graph_.add_param(name + ".running_var", Tensor::full({c}, 1.0f), false)};
  append("batchnorm", params, {{"eps", eps}, {"momentum", momentum}});
  return *this;
}

ModelBuilder& ModelBuilder::layernorm(double eps) {
  const std::string name = next_name("ln");
  const int64_t d = shape_.back();
  append("layernorm",
         {graph_.add_param(name + ".weight", Tensor::full({d}, 1.0f)), graph_.add_param(name + ".bias", Tensor::zeros({d}))},
         {{"eps", eps}});
  return *this;
}

ModelBuilder& ModelBuilder::activation(const std::string& op) {
  check(op == "relu" || op == "gelu" || op == "sigmoid" || op == "tanh" || op == "leaky_relu",
        "unknown activation '" + op + "': use relu, gelu, sigmoid, tanh or leaky_relu");
  append(op, {}, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::maxpool2d(int64_t kernel, int64_t stride, int64_t padding) {
  append("maxpool2d", {}, {{"kernel", {kernel, kernel}}, {"stride", {stride ? stride : kernel, stride ? stride : kernel}}, {"padding", {padding, padding}}});
  return *this;
}

ModelBuilder& ModelBuilder::avgpool2d(int64_t kernel, int64_t stride, int64_t padding) {
  append("avgpool2d", {}, {{"kernel", {kernel, kernel}}, {"stride", {stride ? stride : kernel, stride ? stride : kernel}}, {"padding", {padding, padding}}});
  return *this;
}

ModelBuilder& ModelBuilder::global_avgpool() {
  append("global_avgpool", {}, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::flatten() {
  append("flatten", {}, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::dropout(double p) {
  append("dropout", {}, {{"p", p}});
  return *this;
}

ModelBuilder& ModelBuilder::softmax() {
  append("softmax", {}, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::gate(double sparsity) {
  check(shape_.size() == 1 || shape_.size() == 3, "gate needs a [C] or [C, H, W] input, got " + shape_str(shape_));
  const std::string name = next_name("gate");
  const GateParams p = add_gate_params(graph_, name, shape_[0], sparsity, rng_);
  append("neuron_gate", {p.gates, p.sparsity}, json::object());
  return *this;
}

ModelBuilder& ModelBuilder::moe(int64_t experts, int64_t top_k, int64_t hidden, int64_t shared,
                                const std::string& affinity, const MoeOptions& options) {
  check(shape_.size() == 1, "moe needs a flat input; add 'flatten' before it (input is " + shape_str(shape_) + ")");
  check(experts >= 1 && hidden >= 1 && shared >= 0, "moe: 'experts' and 'hidden' must be >= 1, 'shared' >= 0");
  check(top_k >= 1 && top_k <= experts, "moe: 'top_k' must be between 1 and 'experts' (" + std::to_string(experts) + ")");
  const std::string name = next_name("moe");
  const int64_t d = shape_[0], shared_hidden = shared * hidden;
  const float in_bound = 1.0f / std::sqrt(static_cast<float>(d));
  const float hidden_bound = 1.0f / std::sqrt(static_cast<float>(hidden));
  std::vector<int> params = {add_uniform_param(name + ".router", {experts, d}, in_bound),
                             add_uniform_param(name + ".w1", {experts, hidden, d}, in_bound),
                             add_uniform_param(name + ".b1", {experts, hidden}, in_bound),
                             add_uniform_param(name + ".w2", {experts, d, hidden}, hidden_bound),
                             add_uniform_param(name + ".b2", {experts, d}, hidden_bound)};
  if (shared > 0) {
    const float shared_bound = 1.0f / std::sqrt(static_cast<float>(shared_hidden));
    params.push_back(add_uniform_param(name + ".shared_w1", {shared_hidden, d}, in_bound));
    params.push_back(add_uniform_param(name + ".shared_b1", {shared_hidden}, in_bound));
    params.push_back(add_uniform_param(name + ".shared_w2", {d, shared_hidden}, shared_bound));
    params.push_back(add_uniform_param(name + ".shared_b2", {d}, shared_bound));
  }
  params.push_back(graph_.add_param(name + ".bias", Tensor::zeros({experts}), false));
  params.push_back(graph_.add_param(name + ".load", Tensor::zeros({experts}), false));
  params.push_back(graph_.add_param(name + ".balance_loss", Tensor::zeros({1}), false));
  append("moe", params,
         {{"top_k", top_k}, {"affinity", affinity}, {"bias_update_speed", options.bias_update_speed},
          {"balance_loss_weight", options.balance_loss_weight}, {"capacity_factor", options.capacity_factor}});
  return *this;
}

ModelBuilder& ModelBuilder::residual_block(int64_t out_channels, int64_t stride) {
  check(shape_.size() == 3, "residual_block needs a [C, H, W] input, got " + shape_str(shape_));
  const int in = current_;
  const Shape in_shape = shape_;
  conv2d(out_channels, 3, stride, 1, 1, 1, false).batchnorm().activation("relu");
  conv2d(out_channels, 3, 1, 1, 1, 1, false).batchnorm();
  const int main_branch = current_;
  const Shape out_shape = shape_;
  int shortcut = in;
  if (stride != 1 || in_shape[0] != out_channels) {
    current_ = in;
    shape_ = in_shape;
    conv2d(out_channels, 1, stride, 0, 1, 1, false).batchnorm();
    shortcut = current_;
  }
  // Both branches have out_shape, so the add keeps it.
  current_ = graph_.add("add", {main_branch, shortcut});
  shape_ = out_shape;
  return activation("relu");
}

Graph ModelBuilder::finish() {
  graph_.set_output(current_);
  graph_.validate();
  return graph_;
}

}  // namespace leanai
