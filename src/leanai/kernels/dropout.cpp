// dropout: in training zeroes each value with probability p (attribute, default
// 0.5) and scales the rest by 1/(1-p); in eval it is the identity.
#include <cstring>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

class DropoutKernel : public OpKernel {
 public:
  explicit DropoutKernel(const Node& n) : p_(static_cast<float>(attr_float(n, "p", 0.5))) {
    check(p_ >= 0.0f && p_ < 1.0f, "dropout: p must be in [0, 1)");
  }
  Shape prepare(const std::vector<Shape>& in, bool training) override {
    training_ = training;
    if (training) mask_ = Tensor::empty(in[0], DType::u8);
    return in[0];
  }
  void forward(const Inputs& in, Tensor& y, RunContext& ctx) override {
    if (!training_ || p_ == 0.0f) {
      std::memcpy(y.raw(), in[0]->raw(), y.nbytes());
      return;
    }
    const float* x = in[0]->data<float>();
    float* out = y.data<float>();
    uint8_t* m = mask_.data<uint8_t>();
    const float keep_scale = 1.0f / (1.0f - p_);
    for (int64_t i = 0, n = y.numel(); i < n; ++i) {  // serial: the draws must not depend on thread count
      m[i] = ctx.rng->uniform() >= p_;
      out[i] = m[i] ? x[i] * keep_scale : 0.0f;
    }
  }
  void backward(const Inputs&, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    if (!training_ || p_ == 0.0f) {
      std::memcpy(din[0]->raw(), dy.raw(), dy.nbytes());
      return;
    }
    const float* g = dy.data<float>();
    const uint8_t* m = mask_.data<uint8_t>();
    float* dx = din[0]->data<float>();
    const float keep_scale = 1.0f / (1.0f - p_);
    for (int64_t i = 0, n = dy.numel(); i < n; ++i) dx[i] = m[i] ? g[i] * keep_scale : 0.0f;
  }

 private:
  float p_;
  bool training_ = false;
  Tensor mask_;
};

}  // namespace

void register_dropout_ops() {
  register_op({"dropout", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<DropoutKernel>(n); }});
}

}  // namespace leanai
