// linear (y = x W^T + b, W stored [out, in] as in PyTorch) and matmul
// (batched A @ B), both on oneDNN's SGEMM.
#include <dnnl.hpp>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

// Row-major SGEMM: C = alpha * op(A) op(B) + beta * C.
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw Error("oneDNN sgemm failed (status " + std::to_string(st) + ")");
}

class LinearKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    const Shape& x = in[0];
    const Shape& w = in[1];
    check(x.size() >= 2, "linear expects input [batch, features], got " + shape_str(x));
    check(w.size() == 2, "linear weight must be [out, in], got " + shape_str(w));
    check(x.back() == w[1], "linear: input has " + std::to_string(x.back()) + " features but the weight expects " +
                                std::to_string(w[1]) + " (input " + shape_str(x) + ", weight " + shape_str(w) + ")");
    if (in.size() == 3) check(in[2] == Shape{w[0]}, "linear bias must be [" + std::to_string(w[0]) + "]");
    rows_ = shape_numel(x) / x.back();
    in_ = w[1];
    out_ = w[0];
    Shape y = x;
    y.back() = out_;
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    float* out = y.data<float>();
    float beta = 0.0f;
    if (in.size() == 3) {  // start from the bias and let the GEMM accumulate onto it
      const float* b = in[2]->data<float>();
#pragma omp parallel for if (rows_ * out_ > kParallelMinElements)
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t o = 0; o < out_; ++o) out[r * out_ + o] = b[o];
      beta = 1.0f;
    }
    gemm('N', 'T', rows_, out_, in_, in[0]->data<float>(), in_, in[1]->data<float>(), in_, beta, out, out_);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* g = dy.data<float>();
    if (din[0]) gemm('N', 'N', rows_, in_, out_, g, out_, in[1]->data<float>(), in_, 0.0f, din[0]->data<float>(), in_);
    if (din[1]) gemm('T', 'N', out_, in_, rows_, g, out_, in[0]->data<float>(), in_, 0.0f, din[1]->data<float>(), in_);
    if (din.size() == 3 && din[2]) {
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
  int64_t rows_ = 0, in_ = 0, out_ = 0;
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
    if (shared_b_) return gemm('N', 'N', batch_ * m_, n_, k_, a, k_, b, n_, 0.0f, out, n_);
    for (int64_t i = 0; i < batch_; ++i)
      gemm('N', 'N', m_, n_, k_, a + i * m_ * k_, k_, b + i * k_ * n_, n_, 0.0f, out + i * m_ * n_, n_);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dc, const InputGrads& din, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const float* g = dc.data<float>();
    if (shared_b_) {
      if (din[0]) gemm('N', 'T', batch_ * m_, k_, n_, g, n_, b, n_, 0.0f, din[0]->data<float>(), k_);
      if (din[1]) gemm('T', 'N', k_, n_, batch_ * m_, a, k_, g, n_, 0.0f, din[1]->data<float>(), n_);
      return;
    }
    for (int64_t i = 0; i < batch_; ++i) {
      const float* gi = g + i * m_ * n_;
      if (din[0]) gemm('N', 'T', m_, k_, n_, gi, n_, b + i * k_ * n_, n_, 0.0f, din[0]->data<float>() + i * m_ * k_, k_);
      if (din[1]) gemm('T', 'N', k_, n_, m_, a + i * m_ * k_, k_, gi, n_, 0.0f, din[1]->data<float>() + i * k_ * n_, n_);
    }
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return 2.0 * batch_ * m_ * n_ * k_; }

 private:
  int64_t m_ = 0, n_ = 0, k_ = 0, batch_ = 0;
  bool shared_b_ = true;
};

}  // namespace

void register_linear_ops() {
  register_op({"linear", 2, 3, [](int) { return true; }, [](const Node&) { return std::make_unique<LinearKernel>(); }});
  register_op({"matmul", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<MatMulKernel>(); }});
}

}  // namespace leanai
