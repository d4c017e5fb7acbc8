#include "leanai/kernels/weight_storage.h"

#include "leanai/core/error.h"

namespace leanai {
namespace {

class WeightStorageKernel : public OpKernel {
 public:
  WeightStorageKernel(const Node& n, std::unique_ptr<OpKernel> base)
      : op_(n.op), bf16_(computes_in_bf16(n)), base_(std::move(base)) {}

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    check(!(training && bf16_), op_ + " with compute = \"bf16\" is inference-only; train in f32");
    training_ = training;
    if (bf16_) x_bf16_ = Tensor::empty(in[0]);
    return base_->prepare(in, training);
  }

  void forward(const Inputs& in, Tensor& y, RunContext& ctx) override {
    const Tensor& w = *in[1];
    if (w.dtype() == DType::f32 && !bf16_) return base_->forward(in, y, ctx);
    check(!training_ || w.dtype() == DType::f32, op_ + ": a " + std::string(dtype_name(w.dtype())) +
                                                    " weight is inference-only; train in f32");
    Inputs args = in;
    args[1] = &f32_weight(w);
    if (bf16_) {
      const float* x = in[0]->data<float>();
      float* r = x_bf16_.data<float>();
      for (int64_t i = 0; i < x_bf16_.numel(); ++i) r[i] = bf16_to_f32(f32_to_bf16(x[i]));
      args[0] = &x_bf16_;
    }
    base_->forward(args, y, ctx);
  }

  void backward(const Inputs& in, const Tensor& out, const Tensor& dout, const InputGrads& din,
                RunContext& ctx) override {
    check(in[1]->dtype() == DType::f32 && !bf16_, op_ + " with 16-bit weights or bf16 compute is inference-only");
    base_->backward(in, out, dout, din, ctx);
  }

  double flops(const std::vector<Shape>& in, const Shape& out) const override { return base_->flops(in, out); }

 private:
  // Converted once per weight tensor (keyed by its storage): weights of an
  // inference graph do not change between runs.
  const Tensor& f32_weight(const Tensor& w) {
    if (w.raw() == converted_from_ && w.dtype() == converted_dtype_) return w_f32_;
    w_f32_ = w.to(DType::f32);
    if (bf16_) {
      float* p = w_f32_.data<float>();
      for (int64_t i = 0; i < w_f32_.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
    }
    converted_from_ = w.raw();
    converted_dtype_ = w.dtype();
    return w_f32_;
  }

  std::string op_;
  bool bf16_;
  bool training_ = false;
  std::unique_ptr<OpKernel> base_;
  Tensor x_bf16_, w_f32_;
  const void* converted_from_ = nullptr;
  DType converted_dtype_ = DType::f32;
};

}  // namespace

std::unique_ptr<OpKernel> with_weight_storage(const Node& node, std::unique_ptr<OpKernel> base) {
  return std::make_unique<WeightStorageKernel>(node, std::move(base));
}

bool layer_accepts_dtype(int input_index, DType dtype) {
  if (input_index == 1) return dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16;
  return dtype == DType::f32;
}

bool computes_in_bf16(const Node& node) {
  const std::string c = attr_string(node, "compute", "f32");
  check(c == "f32" || c == "bf16", node.op + " '" + node.name + "': compute must be \"f32\" or \"bf16\", got \"" + c + "\"");
  return c == "bf16";
}

}  // namespace leanai
