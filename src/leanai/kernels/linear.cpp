// linear (y = x W^T + b, W stored [out, in] as in PyTorch) on oneDNN matmul
// primitives, and matmul (batched A @ B) on oneDNN's SGEMM.
#include <dnnl.hpp>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/sgemm.h"
#include "leanai/kernels/weight_storage.h"

namespace leanai {
namespace {

// linear on oneDNN matmul primitives (brgemm kernels, measured ~20% faster
// here than SGEMM on the MLP's shapes), one per pass, created once per shape:
//   forward       y [rows, out]  = x [rows, in] . W^T (+ b)   (W read as [in, out], "ba")
//   backward data dx [rows, in]  = dy [rows, out] . W
//   backward wts  dW [out, in]   = dy^T [out, rows] . x        (dy read as "ba")
class LinearKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool training) override {
    const Shape& x = in[0];
    const Shape& w = in[1];
    check(x.size() >= 2, "linear expects input [batch, features], got " + shape_str(x));
    check(w.size() == 2, "linear weight must be [out, in], got " + shape_str(w));
    check(x.back() == w[1], "linear: input has " + std::to_string(x.back()) + " features but the weight expects " +
                                std::to_string(w[1]) + " (input " + shape_str(x) + ", weight " + shape_str(w) + ")");
    has_bias_ = in.size() == 3;
    if (has_bias_) check(in[2] == Shape{w[0]}, "linear bias must be [" + std::to_string(w[0]) + "]");
    rows_ = shape_numel(x) / x.back();
    in_ = w[1];
    out_ = w[0];
    using tag = dnnl::memory::format_tag;
    auto desc = [](int64_t a, int64_t b, tag t) { return dnnl::memory::desc({a, b}, dnnl::memory::data_type::f32, t); };
    x_md_ = desc(rows_, in_, tag::ab);
    y_md_ = desc(rows_, out_, tag::ab);
    w_md_ = desc(out_, in_, tag::ab);
    wt_md_ = desc(in_, out_, tag::ba);
    dyt_md_ = desc(out_, rows_, tag::ba);
    b_md_ = desc(1, out_, tag::ab);
    auto& eng = cpu_engine();
    fwd_pd_ = dnnl::matmul::primitive_desc(
        has_bias_ ? dnnl::matmul::desc(x_md_, wt_md_, b_md_, y_md_) : dnnl::matmul::desc(x_md_, wt_md_, y_md_),
        user_scratchpad(), eng);
    fwd_ = dnnl::matmul(fwd_pd_);
    if (training) {
      bwd_data_pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(y_md_, w_md_, x_md_), user_scratchpad(), eng);
      bwd_data_ = dnnl::matmul(bwd_data_pd_);
      bwd_w_pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(dyt_md_, x_md_, w_md_), user_scratchpad(), eng);
      bwd_w_ = dnnl::matmul(bwd_w_pd_);
    }
    Shape y = x;
    y.back() = out_;
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, wrap(x_md_, *in[0])},
                                                  {DNNL_ARG_WEIGHTS, wrap(wt_md_, *in[1])},
                                                  {DNNL_ARG_DST, wrap(y_md_, y)},
                                                  {DNNL_ARG_SCRATCHPAD, scratchpad_for(fwd_pd_.scratchpad_desc())}};
    if (has_bias_) args[DNNL_ARG_BIAS] = wrap(b_md_, *in[2]);
    fwd_.execute(cpu_stream(), args);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    check(static_cast<bool>(bwd_w_), "linear backward needs the kernel prepared for training");
    if (din[0])
      bwd_data_.execute(cpu_stream(), {{DNNL_ARG_SRC, wrap(y_md_, dy)},
                                       {DNNL_ARG_WEIGHTS, wrap(w_md_, *in[1])},
                                       {DNNL_ARG_DST, wrap(x_md_, *din[0])},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad_for(bwd_data_pd_.scratchpad_desc())}});
    if (din[1])
      bwd_w_.execute(cpu_stream(), {{DNNL_ARG_SRC, wrap(dyt_md_, dy)},
                                    {DNNL_ARG_WEIGHTS, wrap(x_md_, *in[0])},
                                    {DNNL_ARG_DST, wrap(w_md_, *din[1])},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad_for(bwd_w_pd_.scratchpad_desc())}});
    if (din.size() == 3 && din[2]) {
      const float* g = dy.data<float>();
      float* db = din[2]->data<float>();
      for (int64_t o = 0; o < out_; ++o) db[o] = 0.0f;
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t o = 0; o < out_; ++o) db[o] += g[r * out_ + o];
    }
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override {
    return 2.0 * (shape_numel(in[0]) / in[0].back()) * in[1][0] * in[1][1];
  }

 private:
  bool has_bias_ = false;
  int64_t rows_ = 0, in_ = 0, out_ = 0;
  dnnl::memory::desc x_md_, y_md_, w_md_, wt_md_, dyt_md_, b_md_;
  dnnl::matmul::primitive_desc fwd_pd_, bwd_data_pd_, bwd_w_pd_;
  dnnl::matmul fwd_, bwd_data_, bwd_w_;
};

// A [..., M, K] @ B: B is [K, N] (shared) or [..., K, N] with A's batch dims.
class MatMulKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    const Shape& a = in[0];
    const Shape& b = in[1];
    check(a.size() >= 2 && b.size() >= 2, "matmul needs inputs of rank >= 2, got " + shape_str(a) + " and " + shape_str(b));
    m_ = a[a.size() - 2];
    k_ = a.back();
    n_ = b.back();
    check(b[b.size() - 2] == k_, "matmul: inner dimensions differ: " + shape_str(a) + " @ " + shape_str(b));
    batch_ = shape_numel(a) / (m_ * k_);
    shared_b_ = b.size() == 2;
    if (!shared_b_)
      check(b.size() == a.size() && std::equal(a.begin(), a.end() - 2, b.begin()),
            "matmul: batch dimensions differ: " + shape_str(a) + " @ " + shape_str(b));
    Shape c = a;
    c.back() = n_;
    return c;
  }

  void forward(const Inputs& in, Tensor& c, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    float* out = c.data<float>();
    if (shared_b_) return sgemm('N', 'N', batch_ * m_, n_, k_, a, k_, b, n_, 0.0f, out, n_);
    for (int64_t i = 0; i < batch_; ++i)
      sgemm('N', 'N', m_, n_, k_, a + i * m_ * k_, k_, b + i * k_ * n_, n_, 0.0f, out + i * m_ * n_, n_);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dc, const InputGrads& din, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const float* g = dc.data<float>();
    if (shared_b_) {
      if (din[0]) sgemm('N', 'T', batch_ * m_, k_, n_, g, n_, b, n_, 0.0f, din[0]->data<float>(), k_);
      if (din[1]) sgemm('T', 'N', k_, n_, batch_ * m_, a, k_, g, n_, 0.0f, din[1]->data<float>(), n_);
      return;
    }
    for (int64_t i = 0; i < batch_; ++i) {
      const float* gi = g + i * m_ * n_;
      if (din[0]) sgemm('N', 'T', m_, k_, n_, gi, n_, b + i * k_ * n_, n_, 0.0f, din[0]->data<float>() + i * m_ * k_, k_);
      if (din[1]) sgemm('T', 'N', k_, n_, m_, a + i * m_ * k_, k_, gi, n_, 0.0f, din[1]->data<float>() + i * k_ * n_, n_);
    }
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return 2.0 * batch_ * m_ * n_ * k_; }

 private:
  int64_t m_ = 0, n_ = 0, k_ = 0, batch_ = 0;
  bool shared_b_ = true;
};

}  // namespace

void register_linear_ops() {
  OpInfo linear{"linear", 2, 5, [](int) { return true; }, [](const Node& n) {
                  return with_post_ops(n, with_weight_storage(n, std::make_unique<LinearKernel>()), 3);
                }};
  linear.accepts_dtype = layer_accepts_dtype;
  register_op(linear);
  register_op({"matmul", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<MatMulKernel>(); }});
}

}  // namespace leanai
