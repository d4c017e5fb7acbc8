// Losses, each reducing to the batch mean (a one-element output):
// cross_entropy(logits [N, C], labels [N] i64; attribute label_smoothing) and
// mse(prediction, target of the same shape).
#include <cmath>

#include "leanai/core/numeric.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

class CrossEntropyKernel : public OpKernel {
 public:
  explicit CrossEntropyKernel(const Node& n) : smoothing_(static_cast<float>(attr_float(n, "label_smoothing", 0.0))) {
    check(smoothing_ >= 0.0f && smoothing_ < 1.0f, "cross_entropy: label_smoothing must be in [0, 1)");
  }

  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0].size() == 2, "cross_entropy expects logits [N, classes], got " + shape_str(in[0]));
    check(in[1] == Shape{in[0][0]}, "cross_entropy expects labels [" + std::to_string(in[0][0]) + "], got " + shape_str(in[1]));
    rows_ = in[0][0];
    classes_ = in[0][1];
    probs_ = Tensor::empty(in[0]);
    return {};
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    check(in[1]->dtype() == DType::i64, "cross_entropy labels must be I64");
    const float* x = in[0]->data<float>();
    const int64_t* labels = in[1]->data<int64_t>();
    float* p = probs_.data<float>();
    const float off = smoothing_ / static_cast<float>(classes_);
    double total = 0.0;
    for (int64_t r = 0; r < rows_; ++r) {
      const int64_t label = labels[r];
      check(label >= 0 && label < classes_, "label " + std::to_string(label) + " at row " + std::to_string(r) +
                                                " is outside [0, " + std::to_string(classes_) + ")");
      const float* xr = x + r * classes_;
      const float lse = log_sum_exp(xr, classes_);
      double row_loss = 0.0;
      for (int64_t c = 0; c < classes_; ++c) {
        const float logp = xr[c] - lse;
        p[r * classes_ + c] = std::exp(logp);
        const float target = off + (c == label ? 1.0f - smoothing_ : 0.0f);
        row_loss -= target * logp;
      }
      total += row_loss;
    }
    y.data<float>()[0] = static_cast<float>(total / static_cast<double>(rows_));
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const int64_t* labels = in[1]->data<int64_t>();
    const float* p = probs_.data<float>();
    float* dx = din[0]->data<float>();
    const float scale = dy.data<float>()[0] / static_cast<float>(rows_);
    const float off = smoothing_ / static_cast<float>(classes_);
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t c = 0; c < classes_; ++c) {
        const float target = off + (c == labels[r] ? 1.0f - smoothing_ : 0.0f);
        dx[r * classes_ + c] = (p[r * classes_ + c] - target) * scale;
      }
  }

 private:
  float smoothing_;
  int64_t rows_ = 0, classes_ = 0;
  Tensor probs_;
};

class MseKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0] == in[1], "mse: prediction " + shape_str(in[0]) + " and target " + shape_str(in[1]) + " differ in shape");
    count_ = shape_numel(in[0]);
    return {};
  }
  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    double sum = 0.0;
    for (int64_t i = 0; i < count_; ++i) sum += static_cast<double>(a[i] - b[i]) * (a[i] - b[i]);
    y.data<float>()[0] = static_cast<float>(sum / static_cast<double>(count_));
  }
  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const float scale = 2.0f * dy.data<float>()[0] / static_cast<float>(count_);
    for (int side = 0; side < 2; ++side) {
      if (!din[side]) continue;
      float* d = din[side]->data<float>();
      const float sign = side == 0 ? 1.0f : -1.0f;
      for (int64_t i = 0; i < count_; ++i) d[i] = sign * scale * (a[i] - b[i]);
    }
  }

 private:
  int64_t count_ = 0;
};

}  // namespace

void register_loss_ops() {
  OpInfo ce{"cross_entropy", 2, 2, [](int i) { return i == 0; }, [](const Node& n) { return std::make_unique<CrossEntropyKernel>(n); }};
  ce.input_dtype = [](int i) { return i == 1 ? DType::i64 : DType::f32; };
  register_op(ce);
  register_op({"mse", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<MseKernel>(); }});
}

}  // namespace leanai
