// softmax and log_softmax along one axis (attribute axis, default -1).
#include <cmath>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

class SoftmaxKernel : public OpKernel {
 public:
  SoftmaxKernel(const Node& n, bool log) : axis_(attr_int(n, "axis", -1)), log_(log) {}

  Shape prepare(const std::vector<Shape>& in, bool) override {
    const int64_t rank = static_cast<int64_t>(in[0].size());
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    check(axis >= 0 && axis < rank, "softmax: axis " + std::to_string(axis_) + " is out of range for " + shape_str(in[0]));
    outer_ = shape_numel(Shape(in[0].begin(), in[0].begin() + axis));
    len_ = in[0][axis];
    inner_ = shape_numel(Shape(in[0].begin() + axis + 1, in[0].end()));
    return in[0];
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* x = in[0]->data<float>();
    float* out = y.data<float>();
#pragma omp parallel for collapse(2) if (outer_ * len_ * inner_ > kParallelMinElements)
    for (int64_t o = 0; o < outer_; ++o)
      for (int64_t i = 0; i < inner_; ++i) {
        const float* xs = x + o * len_ * inner_ + i;
        float* ys = out + o * len_ * inner_ + i;
        float mx = xs[0];
        for (int64_t k = 1; k < len_; ++k) mx = std::max(mx, xs[k * inner_]);
        double sum = 0.0;
        for (int64_t k = 0; k < len_; ++k) sum += std::exp(xs[k * inner_] - mx);
        const float lse = mx + static_cast<float>(std::log(sum));
        for (int64_t k = 0; k < len_; ++k)
          ys[k * inner_] = log_ ? xs[k * inner_] - lse : std::exp(xs[k * inner_] - lse);
      }
  }

  void backward(const Inputs&, const Tensor& y, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const float* out = y.data<float>();
    const float* g = dy.data<float>();
    float* dx = din[0]->data<float>();
#pragma omp parallel for collapse(2) if (outer_ * len_ * inner_ > kParallelMinElements)
    for (int64_t o = 0; o < outer_; ++o)
      for (int64_t i = 0; i < inner_; ++i) {
        const int64_t base = o * len_ * inner_ + i;
        double s = 0.0;
        for (int64_t k = 0; k < len_; ++k)
          s += log_ ? g[base + k * inner_] : g[base + k * inner_] * out[base + k * inner_];
        for (int64_t k = 0; k < len_; ++k) {
          const int64_t j = base + k * inner_;
          // softmax: dx = y * (g - sum(g*y)); log_softmax: dx = g - exp(y) * sum(g)
          dx[j] = log_ ? g[j] - std::exp(out[j]) * static_cast<float>(s) : out[j] * (g[j] - static_cast<float>(s));
        }
      }
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override { return 4.0 * shape_numel(in[0]); }

 private:
  int64_t axis_;
  bool log_;
  int64_t outer_ = 0, len_ = 0, inner_ = 0;
};

}  // namespace

void register_softmax_ops() {
  register_op({"softmax", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<SoftmaxKernel>(n, false); }});
  register_op({"log_softmax", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<SoftmaxKernel>(n, true); }});
}

}  // namespace leanai
