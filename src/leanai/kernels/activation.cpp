// Elementwise activations: relu, leaky_relu, gelu (exact, erf form), sigmoid,
// tanh, clip (attributes min and max, each optional: absent = unbounded; the
// gradient passes where min <= x <= max, as torch.clamp's does).
// Memory-bound loops; OpenMP splits them only when large enough to pay off.
#include <algorithm>
#include <cmath>
#include <limits>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {


// F supplies y = fwd(x) and dx = grad(x, y, dy), both branch-free so they vectorize.
template <typename F>
class UnaryKernel : public OpKernel {
 public:
  explicit UnaryKernel(F f) : f_(f) {}
  Shape prepare(const std::vector<Shape>& in, bool) override { return in[0]; }
  void forward(const Inputs& in, Tensor& out, RunContext&) override {
    const float* x = in[0]->data<float>();
    float* y = out.data<float>();
    for_chunks(out.numel(), [&](int64_t begin, int64_t end) { forward_range(x, y, begin, end); });
  }
  void backward(const Inputs& in, const Tensor& out, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const float* x = in[0]->data<float>();
    const float* y = out.data<float>();
    const float* g = dy.data<float>();
    float* dx = din[0]->data<float>();
    for_chunks(out.numel(), [&](int64_t begin, int64_t end) { backward_range(x, y, g, dx, begin, end); });
  }
  double flops(const std::vector<Shape>& in, const Shape&) const override { return static_cast<double>(shape_numel(in[0])); }

 private:
  // Plain restrict-qualified loops: the compiler vectorizes these branch-free
  // (an OpenMP simd loop over the same body was left scalar and branchy).
  void forward_range(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end) const {
    for (int64_t i = begin; i < end; ++i) y[i] = f_.fwd(x[i]);
  }
  void backward_range(const float* __restrict x, const float* __restrict y, const float* __restrict g,
                      float* __restrict dx, int64_t begin, int64_t end) const {
    for (int64_t i = begin; i < end; ++i) dx[i] = f_.grad(x[i], y[i], g[i]);
  }

  F f_;
};

struct Relu {
  float fwd(float x) const { return x > 0.0f ? x : 0.0f; }
  float grad(float x, float, float g) const { return x > 0.0f ? g : 0.0f; }
};
struct LeakyRelu {
  float alpha;
  float fwd(float x) const { return x > 0.0f ? x : alpha * x; }
  float grad(float x, float, float g) const { return x > 0.0f ? g : alpha * g; }
};
struct Gelu {  // x * Phi(x)
  float fwd(float x) const { return 0.5f * x * (1.0f + std::erf(x * 0.70710678f)); }
  float grad(float x, float, float g) const {
    float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678f));
    float pdf = 0.39894228f * std::exp(-0.5f * x * x);
    return g * (cdf + x * pdf);
  }
};
struct Sigmoid {
  float fwd(float x) const { return 1.0f / (1.0f + std::exp(-x)); }
  float grad(float, float y, float g) const { return g * y * (1.0f - y); }
};
struct Tanh {
  float fwd(float x) const { return std::tanh(x); }
  float grad(float, float y, float g) const { return g * (1.0f - y * y); }
};

struct Clip {
  float lo, hi;
  float fwd(float x) const { return std::min(std::max(x, lo), hi); }
  float grad(float x, float, float g) const { return x >= lo && x <= hi ? g : 0.0f; }
};

Clip make_clip(const Node& n) {
  const double inf = std::numeric_limits<double>::infinity();
  const double lo = attr_float(n, "min", -inf), hi = attr_float(n, "max", inf);
  check(!std::isnan(lo) && !std::isnan(hi) && lo <= hi, "clip: min must be <= max");
  return {static_cast<float>(lo), static_cast<float>(hi)};
}

template <typename F>
OpInfo unary(const std::string& name, F f) {
  return {name, 1, 1, [](int) { return true; }, [f](const Node&) { return std::make_unique<UnaryKernel<F>>(f); }};
}

}  // namespace

void register_activation_ops() {
  register_op(unary("relu", Relu{}));
  register_op(unary("gelu", Gelu{}));
  register_op(unary("sigmoid", Sigmoid{}));
  register_op(unary("tanh", Tanh{}));
  register_op({"leaky_relu", 1, 1, [](int) { return true; }, [](const Node& n) {
                 return std::make_unique<UnaryKernel<LeakyRelu>>(LeakyRelu{static_cast<float>(attr_float(n, "alpha", 0.01))});
               }});
  register_op({"clip", 1, 1, [](int) { return true; },
               [](const Node& n) { return std::make_unique<UnaryKernel<Clip>>(make_clip(n)); }});
}

}  // namespace leanai
