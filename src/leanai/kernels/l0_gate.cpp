// l0_gate(x, log_alpha[, l0_weight[, l0_penalty]]): hard-concrete L0 gates
// (Louizos, Welling & Kingma 2018) over the channels of x.
//
// x is [N, C] or [N, C, H, W]; log_alpha [C] is trainable. Attributes beta
// (2/3), gamma (-0.1), zeta (1.1): the distribution of sparse/hard_concrete.h;
// l0_weight (0): lambda when there is no l0_weight input.
//
//   training  one draw per channel and forward pass, u ~ U(0, 1) from the
//             RunContext's generator (seeded runs repeat exactly), shared by
//             the batch: z_c = clamp(sigmoid((logit u + log_alpha_c) / beta)
//             * (zeta - gamma) + gamma, 0, 1)
//   eval      z_c = clamp(sigmoid(log_alpha_c) * (zeta - gamma) + gamma, 0, 1)
//   output    y = x * z, per channel
//
// The expected-L0 penalty lambda * sum_c sigmoid(log_alpha_c - beta *
// log(-gamma / zeta)) belongs to the training loss, but the op has one
// output and the loss node never sees it. So backward adds the penalty's
// gradient to d log_alpha itself: the optimizer then minimizes loss +
// penalty. lambda is read from the optional 1-element buffer l0_weight, so a
// controller can move it during training (nn/l0_controller.h); the optional
// 1-element buffer l0_penalty receives the penalty's value on every training
// forward pass, to be logged or added to the reported loss.
//
// flops() counts nothing: the saving appears once compact_gates removes the
// closed channels and folds the others' z into the next layer.
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/channel_dot.h"
#include "leanai/sparse/hard_concrete.h"

namespace leanai {
namespace {

class L0GateKernel : public OpKernel {
 public:
  explicit L0GateKernel(const Node& n) : hc_(HardConcrete::of(n)), attr_weight_(attr_float(n, "l0_weight", 0.0)) {
    check(attr_weight_ >= 0.0, "l0_gate: l0_weight must be >= 0, got " + std::to_string(attr_weight_));
  }

  Shape prepare(const std::vector<Shape>& in, bool) override {
    const Shape& x = in[0];
    check(x.size() == 2 || x.size() == 4, "l0_gate expects x [N, C] or [N, C, H, W], got " + shape_str(x));
    batch_ = x[0];
    channels_ = x[1];
    inner_ = x.size() == 4 ? x[2] * x[3] : 1;
    check(in[1] == Shape{channels_}, "l0_gate: log_alpha must be [" + std::to_string(channels_) +
                                         "] (one per channel of " + shape_str(x) + "), got " + shape_str(in[1]));
    for (size_t i = 2; i < in.size(); ++i)
      check(shape_numel(in[i]) == 1, std::string("l0_gate: ") + (i == 2 ? "l0_weight" : "l0_penalty") +
                                         " must hold one value, got " + shape_str(in[i]));
    z_.assign(channels_, 0.0f);
    dz_.assign(channels_, 0.0f);
    return x;
  }

  void forward(const Inputs& in, Tensor& out, RunContext& ctx) override {
    const float* log_alpha = in[1]->data<float>();
    if (ctx.training && !ctx.rng) throw Error("l0_gate: training needs a random generator in the run context");
    for (int64_t c = 0; c < channels_; ++c) {
      const double a = log_alpha[c];
      if (!std::isfinite(a))
        throw Error("l0_gate: log_alpha " + std::to_string(c) + " is not finite; training diverged, lower the learning rate");
      double s, z;
      if (ctx.training) {
        // Keep u inside (0, 1): logit(0) = -inf.
        const double u = std::clamp(static_cast<double>(ctx.rng->uniform()), 1e-6, 1.0 - 1e-6);
        s = hc_.sample_s(a, u);
        z = hc_.stretch(s);
        // dz/dlog_alpha = (zeta - gamma) * s * (1 - s) / beta, 0 where clamped.
        dz_[c] = z > 0.0 && z < 1.0 ? static_cast<float>((hc_.zeta - hc_.gamma) * s * (1.0 - s) / hc_.beta) : 0.0f;
      } else {
        s = HardConcrete::sigmoid(a);
        z = hc_.eval_gate(a);
        dz_[c] = z > 0.0 && z < 1.0 ? static_cast<float>((hc_.zeta - hc_.gamma) * s * (1.0 - s)) : 0.0f;
      }
      z_[c] = static_cast<float>(z);
    }
    if (ctx.training && in.size() == 4) in[3]->data<float>()[0] = static_cast<float>(penalty(in));
    scale_channels(in[0]->data<float>(), out.data<float>());
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* g = dy.data<float>();
    if (din[0]) scale_channels(g, din[0]->data<float>());
    if (!din[1]) return;
    float* da = din[1]->data<float>();
    channel_dot(x, g, da, batch_, channels_, inner_);
    const double lambda = weight(in);
    const double shift = hc_.beta * std::log(-hc_.gamma / hc_.zeta);
    const float* log_alpha = in[1]->data<float>();
    for (int64_t c = 0; c < channels_; ++c) {
      // d/da of lambda * sigmoid(a - shift) = lambda * p * (1 - p).
      const double p = HardConcrete::sigmoid(log_alpha[c] - shift);
      da[c] = static_cast<float>(da[c] * dz_[c] + lambda * p * (1.0 - p));
    }
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return 0.0; }

 private:
  double weight(const Inputs& in) const {
    if (in.size() < 3) return attr_weight_;
    const float lambda = in[2]->data<float>()[0];
    if (!(lambda >= 0.0f && std::isfinite(lambda)))
      throw Error("l0_gate: l0_weight must be a finite number >= 0, got " + std::to_string(lambda));
    return lambda;
  }

  double penalty(const Inputs& in) const {
    const float* log_alpha = in[1]->data<float>();
    double open = 0.0;
    for (int64_t c = 0; c < channels_; ++c) open += hc_.open_probability(log_alpha[c]);
    return weight(in) * open;
  }

  // y = x * z_c over each channel's plane.
  void scale_channels(const float* __restrict x, float* __restrict y) const {
    const float* z = z_.data();
    if (inner_ == 1) {
      for (int64_t n = 0; n < batch_; ++n)
        for (int64_t c = 0; c < channels_; ++c) y[n * channels_ + c] = x[n * channels_ + c] * z[c];
      return;
    }
    const int64_t planes = batch_ * channels_, inner = inner_, channels = channels_;
#pragma omp parallel for if (planes * inner > kParallelMinElements)
    for (int64_t p = 0; p < planes; ++p) {
      const float zc = z[p % channels];
      for (int64_t i = 0; i < inner; ++i) y[p * inner + i] = x[p * inner + i] * zc;
    }
  }

  HardConcrete hc_;
  double attr_weight_ = 0.0;
  int64_t batch_ = 0, channels_ = 0, inner_ = 1;
  std::vector<float> z_, dz_;  // per channel: the gate of the last forward pass and dz/dlog_alpha
};

}  // namespace

void register_l0_gate_ops() {
  register_op({"l0_gate", 2, 4, [](int i) { return i < 2; },
               [](const Node& n) { return std::make_unique<L0GateKernel>(n); }});
}

}  // namespace leanai
