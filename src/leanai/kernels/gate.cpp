// neuron_gate(x, gates, sparsity): dynamic sparsity over output neurons.
//
// x is [N, C] or [N, C, H, W]; gates [C] is trainable; sparsity is a
// 1-element buffer holding the current s in [0, 1) (a buffer, so a schedule
// can ramp it during training and the model file keeps it). Each forward pass
// switches off the floor(s * C) channels with the smallest gates (the rule in
// sparse/gate_mask.h) and passes the rest through: y = x * mask per channel.
//
// Backward: dx = dy * mask. The gates get a straight-through estimate,
// dL/dg_c = sum over n (and h, w) of dy * x, for every channel, on or off,
// as if y = x * g at g = 1: the mask's own derivative is zero almost
// everywhere, and without this an off gate could never come back.
//
// flops() counts nothing: a mask saves no work by itself. The saving appears
// once compact_gates removes the off channels from the neighbouring layers.
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/channel_dot.h"
#include "leanai/sparse/gate_mask.h"

namespace leanai {
namespace {

class NeuronGateKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    const Shape& x = in[0];
    check(x.size() == 2 || x.size() == 4, "neuron_gate expects x [N, C] or [N, C, H, W], got " + shape_str(x));
    batch_ = x[0];
    channels_ = x[1];
    inner_ = x.size() == 4 ? x[2] * x[3] : 1;
    check(in[1] == Shape{channels_}, "neuron_gate: gates must be [" + std::to_string(channels_) + "] (one per channel of " +
                                         shape_str(x) + "), got " + shape_str(in[1]));
    check(shape_numel(in[2]) == 1, "neuron_gate: sparsity must hold one value, got " + shape_str(in[2]));
    mask_ = Tensor::empty({channels_});
    order_.assign(channels_, 0);
    return x;
  }

  void forward(const Inputs& in, Tensor& out, RunContext&) override {
    float* mask = mask_.data<float>();
    const double sparsity = in[2]->data<float>()[0];
    gate_mask(in[1]->data<float>(), channels_, gates_off(sparsity, channels_), order_, mask);
    const float* x = in[0]->data<float>();
    float* y = out.data<float>();
    if (inner_ == 1) {
      for (int64_t n = 0; n < batch_; ++n) select_row(x + n * channels_, mask, y + n * channels_, channels_);
      return;
    }
    const int64_t planes = batch_ * channels_;
#pragma omp parallel for if (planes * inner_ > kParallelMinElements)
    for (int64_t p = 0; p < planes; ++p) scale_plane(x + p * inner_, mask[p % channels_], y + p * inner_, inner_);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* g = dy.data<float>();
    const float* mask = mask_.data<float>();
    if (din[0]) {
      float* dx = din[0]->data<float>();
      if (inner_ == 1) {
        for (int64_t n = 0; n < batch_; ++n) select_row(g + n * channels_, mask, dx + n * channels_, channels_);
      } else {
        const int64_t planes = batch_ * channels_;
#pragma omp parallel for if (planes * inner_ > kParallelMinElements)
        for (int64_t p = 0; p < planes; ++p) scale_plane(g + p * inner_, mask[p % channels_], dx + p * inner_, inner_);
      }
    }
    if (din[1]) channel_dot(x, g, din[1]->data<float>(), batch_, channels_, inner_);  // straight-through: every gate gets sum(dy * x)
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return 0.0; }

 private:
  static void select_row(const float* __restrict x, const float* __restrict mask, float* __restrict y, int64_t n) {
    for (int64_t c = 0; c < n; ++c) y[c] = mask[c] != 0.0f ? x[c] : 0.0f;
  }
  static void scale_plane(const float* __restrict x, float m, float* __restrict y, int64_t n) {
    if (m == 0.0f) {
      for (int64_t i = 0; i < n; ++i) y[i] = 0.0f;
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
    }
  }

  int64_t batch_ = 0, channels_ = 0, inner_ = 1;
  Tensor mask_;                 // 1 = on, 0 = off, per channel; set by forward, read by backward
  std::vector<int64_t> order_;  // scratch for the mask rule
};

}  // namespace

void register_gate_ops() {
  register_op({"neuron_gate", 3, 3, [](int i) { return i < 2; }, [](const Node&) { return std::make_unique<NeuronGateKernel>(); }});
}

}  // namespace leanai
