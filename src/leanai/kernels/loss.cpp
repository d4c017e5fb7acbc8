// Losses, each reducing to the batch mean (a one-element output):
//   cross_entropy(logits [N, C], labels [N] i64, weights [N] optional; attribute label_smoothing)
//   soft_cross_entropy(logits [N, C], targets [N, C], weights [N] optional): targets are
//     label distributions (MixUp / CutMix rows), not class ids
//   mse(prediction, target of the same shape)
// With weights the loss is sum_i w_i * l_i / N: divided by N, not by sum w, so a
// weight of 0 drops a row without making the others count more. Labels, targets
// and weights get no gradient.
#include <cmath>

#include "leanai/core/numeric.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

// The optional per-row loss weights (input 2 of both cross-entropy ops).
void check_weights_shape(const char* op, const std::vector<Shape>& in) {
  if (in.size() < 3) return;
  check(in[2] == Shape{in[0][0]}, std::string(op) + " expects weights [" + std::to_string(in[0][0]) + "] (one per row), got " +
                                      shape_str(in[2]));
}

// Null when the op has no weights input; otherwise checked finite and non-negative.
const float* row_weights(const char* op, const Inputs& in, int64_t rows) {
  if (in.size() < 3) return nullptr;
  const float* w = in[2]->data<float>();
  for (int64_t r = 0; r < rows; ++r)
    check(std::isfinite(w[r]) && w[r] >= 0.0f, std::string(op) + ": weight " + std::to_string(w[r]) + " at row " +
                                                   std::to_string(r) + " must be finite and >= 0 (0 drops the row)");
  return w;
}

class CrossEntropyKernel : public OpKernel {
 public:
  explicit CrossEntropyKernel(const Node& n) : smoothing_(static_cast<float>(attr_float(n, "label_smoothing", 0.0))) {
    check(smoothing_ >= 0.0f && smoothing_ < 1.0f, "cross_entropy: label_smoothing must be in [0, 1)");
  }

  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0].size() == 2, "cross_entropy expects logits [N, classes], got " + shape_str(in[0]));
    check(in[1] == Shape{in[0][0]}, "cross_entropy expects labels [" + std::to_string(in[0][0]) + "], got " + shape_str(in[1]));
    check_weights_shape("cross_entropy", in);
    rows_ = in[0][0];
    classes_ = in[0][1];
    probs_ = Tensor::empty(in[0]);
    return {};
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    check(in[1]->dtype() == DType::i64, "cross_entropy labels must be I64");
    const float* x = in[0]->data<float>();
    const int64_t* labels = in[1]->data<int64_t>();
    const float* w = row_weights("cross_entropy", in, rows_);
    float* p = probs_.data<float>();
    const float off = smoothing_ / static_cast<float>(classes_);
    double total = 0.0;
    for (int64_t r = 0; r < rows_; ++r) {
      const int64_t label = labels[r];
      // Not check(): its message would be built for every row of every batch.
      if (label < 0 || label >= classes_)
        throw Error("label " + std::to_string(label) + " at row " + std::to_string(r) + " is outside [0, " +
                    std::to_string(classes_) + ")");
      const float* xr = x + r * classes_;
      const float lse = log_sum_exp(xr, classes_);
      double row_loss = 0.0;
      for (int64_t c = 0; c < classes_; ++c) {
        const float logp = xr[c] - lse;
        p[r * classes_ + c] = std::exp(logp);
        const float target = off + (c == label ? 1.0f - smoothing_ : 0.0f);
        row_loss -= target * logp;
      }
      total += (w ? w[r] : 1.0f) * row_loss;
    }
    y.data<float>()[0] = static_cast<float>(total / static_cast<double>(rows_));
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const int64_t* labels = in[1]->data<int64_t>();
    const float* w = in.size() > 2 ? in[2]->data<float>() : nullptr;  // checked by forward
    const float* p = probs_.data<float>();
    float* dx = din[0]->data<float>();
    const float scale = dy.data<float>()[0] / static_cast<float>(rows_);
    const float off = smoothing_ / static_cast<float>(classes_);
    for (int64_t r = 0; r < rows_; ++r) {
      const float row_scale = w ? w[r] * scale : scale;
      for (int64_t c = 0; c < classes_; ++c) {
        const float target = off + (c == labels[r] ? 1.0f - smoothing_ : 0.0f);
        dx[r * classes_ + c] = (p[r * classes_ + c] - target) * row_scale;
      }
    }
  }

 private:
  float smoothing_;
  int64_t rows_ = 0, classes_ = 0;
  Tensor probs_;
};

// Cross-entropy against a label distribution per row. Targets need not sum to
// 1 (so a caller's rounding does not bias the gradient): for row sum T the
// loss is -sum_c t_c log p_c and its gradient is p_c * T - t_c.
class SoftCrossEntropyKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0].size() == 2, "soft_cross_entropy expects logits [N, classes], got " + shape_str(in[0]));
    check(in[1] == in[0], "soft_cross_entropy expects targets " + shape_str(in[0]) + " (one distribution per row, like the logits), got " +
                              shape_str(in[1]));
    check_weights_shape("soft_cross_entropy", in);
    rows_ = in[0][0];
    classes_ = in[0][1];
    probs_ = Tensor::empty(in[0]);
    target_sums_ = Tensor::empty({rows_});
    return {};
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* t = in[1]->data<float>();
    const float* w = row_weights("soft_cross_entropy", in, rows_);
    float* p = probs_.data<float>();
    float* sums = target_sums_.data<float>();
    double total = 0.0;
    for (int64_t r = 0; r < rows_; ++r) {
      const float* xr = x + r * classes_;
      const float* tr = t + r * classes_;
      const float lse = log_sum_exp(xr, classes_);
      double row_loss = 0.0, row_sum = 0.0;
      for (int64_t c = 0; c < classes_; ++c) {
        check(std::isfinite(tr[c]) && tr[c] >= 0.0f, "soft_cross_entropy: target " + std::to_string(tr[c]) + " at row " +
                                                         std::to_string(r) + ", class " + std::to_string(c) +
                                                         " must be finite and >= 0 (each row is a label distribution)");
        const float logp = xr[c] - lse;
        p[r * classes_ + c] = std::exp(logp);
        row_loss -= tr[c] * logp;
        row_sum += tr[c];
      }
      sums[r] = static_cast<float>(row_sum);
      total += (w ? w[r] : 1.0f) * row_loss;
    }
    y.data<float>()[0] = static_cast<float>(total / static_cast<double>(rows_));
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const float* t = in[1]->data<float>();
    const float* w = in.size() > 2 ? in[2]->data<float>() : nullptr;  // checked by forward
    const float* p = probs_.data<float>();
    const float* sums = target_sums_.data<float>();
    float* dx = din[0]->data<float>();
    const float scale = dy.data<float>()[0] / static_cast<float>(rows_);
    for (int64_t r = 0; r < rows_; ++r) {
      const float row_scale = w ? w[r] * scale : scale;
      for (int64_t c = 0; c < classes_; ++c) {
        const int64_t i = r * classes_ + c;
        dx[i] = (p[i] * sums[r] - t[i]) * row_scale;
      }
    }
  }

 private:
  int64_t rows_ = 0, classes_ = 0;
  Tensor probs_, target_sums_;
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
  // Only the logits are differentiable: labels, targets and weights are data.
  OpInfo ce{"cross_entropy", 2, 3, [](int i) { return i == 0; }, [](const Node& n) { return std::make_unique<CrossEntropyKernel>(n); }};
  ce.input_dtype = [](int i) { return i == 1 ? DType::i64 : DType::f32; };
  register_op(ce);
  register_op({"soft_cross_entropy", 2, 3, [](int i) { return i == 0; },
               [](const Node&) { return std::make_unique<SoftCrossEntropyKernel>(); }});
  register_op({"mse", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<MseKernel>(); }});
}

}  // namespace leanai
