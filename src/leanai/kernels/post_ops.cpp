#include "leanai/kernels/post_ops.h"

#include "leanai/core/error.h"

namespace leanai {
namespace {

// base(x...) then each post-op, through the ops' own kernels: the reference
// the compiled runtime's oneDNN post-ops are tested against.
class PostOpsKernel : public OpKernel {
 public:
  PostOpsKernel(const Node& node, std::unique_ptr<OpKernel> base, std::vector<PostOp> ops)
      : name_(node.op), base_(std::move(base)), ops_(std::move(ops)) {
    for (const PostOp& p : ops_) {
      Node n;
      n.op = p.op;
      n.attrs = p.attrs;
      steps_.push_back(p.op == "add" ? nullptr : find_op(p.op).make(n));
    }
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    check(!training, name_ + " with fused post-ops is inference-only; train the graph before fusion");
    const size_t extra = count_add_post_ops(ops_);
    base_inputs_ = in.size() - extra;
    Shape y = base_->prepare({in.begin(), in.begin() + base_inputs_}, false);
    size_t next_add = base_inputs_;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].op == "add") {
        check(in[next_add] == y, name_ + ": the fused add's operand is " + shape_str(in[next_add]) +
                                     ", the output is " + shape_str(y) + "; they must match");
        ++next_add;
      } else {
        steps_[i]->prepare({y}, false);
      }
    }
    scratch_ = Tensor::empty(y);
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext& ctx) override {
    base_->forward({in.begin(), in.begin() + base_inputs_}, y, ctx);
    size_t next_add = base_inputs_;
    for (size_t i = 0; i < ops_.size(); ++i) {
      float* out = y.data<float>();
      if (ops_[i].op == "add") {
        const float* r = in[next_add++]->data<float>();
        for (int64_t k = 0; k < y.numel(); ++k) out[k] += r[k];
      } else {
        scratch_.copy_from(y);
        steps_[i]->forward({&scratch_}, y, ctx);
      }
    }
  }

  void backward(const Inputs&, const Tensor&, const Tensor&, const InputGrads&, RunContext&) override {
    throw Error(name_ + " with fused post-ops is inference-only; train the graph before fusion");
  }

  double flops(const std::vector<Shape>& in, const Shape& out) const override {
    return base_->flops({in.begin(), in.begin() + base_inputs_}, out) +
           static_cast<double>(ops_.size()) * shape_numel(out);
  }

 private:
  std::string name_;
  std::unique_ptr<OpKernel> base_;
  std::vector<PostOp> ops_;
  std::vector<std::unique_ptr<OpKernel>> steps_;
  size_t base_inputs_ = 0;
  Tensor scratch_;
};

}  // namespace

EltwiseForm eltwise_form(const std::string& op, const json& attrs) {
  Node n;
  n.op = op;
  n.attrs = attrs;
  using a = dnnl::algorithm;
  if (op == "relu") return {a::eltwise_relu, 0.0f, 0.0f};
  if (op == "leaky_relu") return {a::eltwise_relu, static_cast<float>(attr_float(n, "alpha", 0.01)), 0.0f};
  if (op == "gelu") return {a::eltwise_gelu_erf, 0.0f, 0.0f};
  if (op == "sigmoid") return {a::eltwise_logistic, 0.0f, 0.0f};
  if (op == "tanh") return {a::eltwise_tanh, 0.0f, 0.0f};
  if (op == "clip")
    return {a::eltwise_clip_v2, static_cast<float>(attr_float(n, "min", -3.4e38)),
            static_cast<float>(attr_float(n, "max", 3.4e38))};
  throw Error("'" + op + "' is not an activation oneDNN can run as eltwise");
}

bool is_fusable_activation(const std::string& op) {
  return op == "relu" || op == "leaky_relu" || op == "gelu" || op == "sigmoid" || op == "tanh" || op == "clip";
}

std::vector<PostOp> parse_post_ops(const Node& node) {
  std::vector<PostOp> ops;
  if (!node.attrs.contains("post_ops")) return ops;
  const json& list = node.attrs["post_ops"];
  check(list.is_array(), node.op + ": 'post_ops' must be a list of {\"op\": ...} objects");
  for (const json& item : list) {
    check(item.is_object() && item.contains("op") && item["op"].is_string(),
          node.op + ": each post-op must be an object with an \"op\" name");
    PostOp p{item["op"].get<std::string>(), item.value("attrs", json::object())};
    check(p.op == "add" || is_fusable_activation(p.op),
          node.op + ": post-op '" + p.op + "' is not supported (add, relu, leaky_relu, gelu, sigmoid, tanh, clip)");
    check(p.attrs.is_object(), node.op + ": post-op attrs must be an object");
    ops.push_back(std::move(p));
  }
  return ops;
}

int count_add_post_ops(const std::vector<PostOp>& ops) {
  int n = 0;
  for (const PostOp& p : ops) n += p.op == "add";
  return n;
}

std::unique_ptr<OpKernel> with_post_ops(const Node& node, std::unique_ptr<OpKernel> base, int base_max_inputs) {
  std::vector<PostOp> ops = parse_post_ops(node);
  // A node built only to size shapes has no inputs yet; prepare() checks those.
  if (!node.inputs.empty()) {
    const int base_inputs = static_cast<int>(node.inputs.size()) - count_add_post_ops(ops);
    check(base_inputs >= 1 && base_inputs <= base_max_inputs,
          node.op + ": " + std::to_string(node.inputs.size()) + " inputs do not fit " +
              std::to_string(count_add_post_ops(ops)) + " fused add(s)");
  }
  if (ops.empty()) return base;
  return std::make_unique<PostOpsKernel>(node, std::move(base), std::move(ops));
}

dnnl::post_ops to_dnnl_post_ops(const std::vector<PostOp>& ops, const std::vector<dnnl::memory::desc>& add_descs,
                                int sum_in_place_index) {
  dnnl::post_ops out;
  size_t next_add = 0;
  for (const PostOp& p : ops) {
    if (p.op == "add") {
      check(next_add < add_descs.size(), "post-ops: missing the operand of a fused add");
      if (static_cast<int>(next_add) == sum_in_place_index)
        out.append_sum(1.0f);
      else
        out.append_binary(dnnl::algorithm::binary_add, add_descs[next_add]);
      ++next_add;
    } else {
      EltwiseForm e = eltwise_form(p.op, p.attrs);
      out.append_eltwise(1.0f, e.alg, e.alpha, e.beta);
    }
  }
  return out;
}

}  // namespace leanai
