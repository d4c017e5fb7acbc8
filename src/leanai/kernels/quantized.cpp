// qlinear and qconv2d (see quant/precision.h): the reference kernels the
// compiled Plan's oneDNN int8 path is checked against. Plain loops with exact
// int32 accumulation of (xq - z) * Wq; inference only.
#include <vector>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/input_quant.h"

namespace leanai {
namespace {

// What both ops share: the input's quantization and the dequantizing epilogue.
class QuantizedKernelBase : public OpKernel {
 public:
  explicit QuantizedKernelBase(const Node& n) : op_(n.op), iq_(parse_input_quant(n)) {}

  void backward(const Inputs&, const Tensor&, const Tensor&, const InputGrads&, RunContext&) override {
    throw Error(op_ + " is inference-only: train the float model, then quantize it");
  }

 protected:
  void refuse_training(bool training) const {
    check(!training, op_ + " is inference-only: train the float model, then quantize it");
  }
  void check_channel_params(const std::vector<Shape>& in, int64_t out) const {
    check(in.size() >= 4, op_ + " takes (x, Wq, w_scale, b)");
    check(in[2] == Shape{out} && in[3] == Shape{out},
          op_ + ": w_scale and b must be [" + std::to_string(out) + "], got " + shape_str(in[2]) + " and " + shape_str(in[3]));
  }
  // xq - z for every input value, with this run's params.
  void quantize_input(const Tensor& x) {
    const float* xp = x.data<float>();
    const int64_t n = x.numel();
    params_ = iq_.dynamic ? dynamic_params(xp, n, iq_.dtype) : iq_.params;
    centered_.resize(n);
    for (int64_t i = 0; i < n; ++i) centered_[i] = quantize_value(xp[i], params_) - params_.zero_point;
  }
  float dequant(int32_t acc, float w_scale, float bias) const {
    return static_cast<float>(acc) * params_.scale * w_scale + bias;
  }

  std::string op_;
  InputQuant iq_;
  QuantParams params_;
  std::vector<int32_t> centered_;
};

class QLinearKernel : public QuantizedKernelBase {
 public:
  using QuantizedKernelBase::QuantizedKernelBase;

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    refuse_training(training);
    const Shape& x = in[0];
    check(in[1].size() == 2, "qlinear: Wq must be [out, in], got " + shape_str(in[1]));
    check(x.size() >= 2 && x.back() == in[1][1], "qlinear: input " + shape_str(x) + " does not fit Wq " + shape_str(in[1]));
    out_ = in[1][0];
    in_ = in[1][1];
    rows_ = shape_numel(x) / in_;
    check_channel_params(in, out_);
    Shape y = x;
    y.back() = out_;
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    quantize_input(*in[0]);
    const int8_t* w = in[1]->data<int8_t>();
    const float* ws = in[2]->data<float>();
    const float* b = in[3]->data<float>();
    float* out = y.data<float>();
    for (int64_t r = 0; r < rows_; ++r) {
      const int32_t* xr = centered_.data() + r * in_;
      for (int64_t o = 0; o < out_; ++o) {
        const int8_t* wr = w + o * in_;
        int32_t acc = 0;
        for (int64_t k = 0; k < in_; ++k) acc += xr[k] * static_cast<int32_t>(wr[k]);
        out[r * out_ + o] = dequant(acc, ws[o], b[o]);
      }
    }
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override {
    return 2.0 * (shape_numel(in[0]) / in[0].back()) * in[1][0] * in[1][1];
  }

 private:
  int64_t rows_ = 0, in_ = 0, out_ = 0;
};

// im2col per sample and group, then an integer matrix product.
class QConv2dKernel : public QuantizedKernelBase {
 public:
  explicit QConv2dKernel(const Node& n)
      : QuantizedKernelBase(n),
        stride_(attr_ints(n, "stride", {1, 1})),
        pad_(attr_ints(n, "padding", {0, 0})),
        dilation_(attr_ints(n, "dilation", {1, 1})),
        groups_(attr_int(n, "groups", 1)) {
    check(stride_.size() == 2 && pad_.size() == 2 && dilation_.size() == 2,
          "qconv2d: stride, padding and dilation take one or two integers");
    for (int i = 0; i < 2; ++i)
      check(stride_[i] >= 1 && pad_[i] >= 0 && dilation_[i] >= 1, "qconv2d: stride and dilation must be >= 1 and padding >= 0");
    check(groups_ >= 1, "qconv2d: groups must be >= 1");
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    refuse_training(training);
    x_ = in[0];
    w_ = in[1];
    check(x_.size() == 4 && w_.size() == 4, "qconv2d expects x [N, C, H, W] and Wq [OC, C/groups, KH, KW], got " +
                                                shape_str(x_) + " and " + shape_str(w_));
    check(x_[1] % groups_ == 0 && w_[0] % groups_ == 0 && w_[1] * groups_ == x_[1],
          "qconv2d: input " + shape_str(x_) + " does not fit Wq " + shape_str(w_) + " with " + std::to_string(groups_) +
              " group(s)");
    check_channel_params(in, w_[0]);
    y_ = {x_[0], w_[0], 0, 0};
    for (int i = 0; i < 2; ++i) {
      const int64_t span = x_[2 + i] + 2 * pad_[i] - (dilation_[i] * (w_[2 + i] - 1) + 1);
      check(span >= 0, "qconv2d: kernel " + shape_str({w_[2], w_[3]}) + " is larger than the padded input " + shape_str(x_));
      y_[2 + i] = span / stride_[i] + 1;
    }
    const int64_t k = w_[1] * w_[2] * w_[3], p = y_[2] * y_[3];
    col_.assign(k * p, 0);
    acc_.assign(p, 0);
    return y_;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    quantize_input(*in[0]);
    const int8_t* w = in[1]->data<int8_t>();
    const float* ws = in[2]->data<float>();
    const float* b = in[3]->data<float>();
    float* out = y.data<float>();
    const int64_t cg = w_[1], og = w_[0] / groups_, k = cg * w_[2] * w_[3], p = y_[2] * y_[3];
    for (int64_t n = 0; n < x_[0]; ++n)
      for (int64_t g = 0; g < groups_; ++g) {
        im2col(n, g * cg, cg);
        for (int64_t o = g * og; o < (g + 1) * og; ++o) {
          std::fill(acc_.begin(), acc_.end(), 0);
          for (int64_t r = 0; r < k; ++r) {
            const int32_t wv = w[o * k + r];
            const int32_t* c = col_.data() + r * p;
            for (int64_t q = 0; q < p; ++q) acc_[q] += wv * c[q];
          }
          float* yo = out + (n * w_[0] + o) * p;
          for (int64_t q = 0; q < p; ++q) yo[q] = dequant(acc_[q], ws[o], b[o]);
        }
      }
  }

  double flops(const std::vector<Shape>& in, const Shape& out) const override {
    return 2.0 * shape_numel(out) * in[1][1] * in[1][2] * in[1][3];
  }

 private:
  // col[(c, ky, kx), (oy, ox)] = xq - z, 0 in the padding (a float 0 quantizes to z exactly).
  void im2col(int64_t n, int64_t c0, int64_t cg) {
    const int64_t h = x_[2], wd = x_[3], oh = y_[2], ow = y_[3];
    int32_t* col = col_.data();
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ky = 0; ky < w_[2]; ++ky)
        for (int64_t kx = 0; kx < w_[3]; ++kx) {
          const int32_t* src = centered_.data() + ((n * x_[1] + c0 + c) * h) * wd;
          for (int64_t oy = 0; oy < oh; ++oy) {
            const int64_t iy = oy * stride_[0] - pad_[0] + ky * dilation_[0];
            for (int64_t ox = 0; ox < ow; ++ox) {
              const int64_t ix = ox * stride_[1] - pad_[1] + kx * dilation_[1];
              *col++ = iy >= 0 && iy < h && ix >= 0 && ix < wd ? src[iy * wd + ix] : 0;
            }
          }
        }
  }

  std::vector<int64_t> stride_, pad_, dilation_;
  int64_t groups_;
  Shape x_, w_, y_;
  std::vector<int32_t> col_, acc_;
};

DType quantized_input_dtype(int i) { return i == 1 ? DType::i8 : DType::f32; }

}  // namespace

void register_quantized_ops() {
  // (x, Wq, w_scale, b) plus up to two fused residual adds, as for linear / conv2d.
  OpInfo ql{"qlinear", 4, 6, [](int) { return false; },
            [](const Node& n) { return with_post_ops(n, std::make_unique<QLinearKernel>(n), 4); }};
  ql.input_dtype = quantized_input_dtype;
  register_op(ql);
  OpInfo qc{"qconv2d", 4, 6, [](int) { return false; },
            [](const Node& n) { return with_post_ops(n, std::make_unique<QConv2dKernel>(n), 4); }};
  qc.input_dtype = quantized_input_dtype;
  register_op(qc);
}

}  // namespace leanai
