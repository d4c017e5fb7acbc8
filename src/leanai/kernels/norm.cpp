// batchnorm (oneDNN) and layernorm (by hand, over the last axis).
//
// batchnorm inputs: x [N, C] or [N, C, H, W], gamma [C], beta [C],
// running_mean [C], running_var [C]. In training it normalizes with the batch
// statistics and updates the running ones in place (PyTorch's rule: momentum
// 0.1, unbiased variance); in eval it uses the running statistics.
#include <cmath>

#include <dnnl.hpp>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/dnnl_context.h"

namespace leanai {
namespace {

using nf = dnnl::normalization_flags;

class BatchNormKernel : public OpKernel {
 public:
  explicit BatchNormKernel(const Node& n)
      : eps_(static_cast<float>(attr_float(n, "eps", 1e-5))), momentum_(static_cast<float>(attr_float(n, "momentum", 0.1))) {
    check(eps_ > 0.0f, "batchnorm: eps must be > 0");
    check(momentum_ >= 0.0f && momentum_ <= 1.0f, "batchnorm: momentum must be in [0, 1]");
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    const Shape& x = in[0];
    check(x.size() == 2 || x.size() == 4, "batchnorm expects [N, C] or [N, C, H, W], got " + shape_str(x));
    channels_ = x[1];
    for (int i = 1; i < 5; ++i)
      check(in[i] == Shape{channels_}, "batchnorm: gamma, beta and running statistics must be [" +
                                           std::to_string(channels_) + "], got " + shape_str(in[i]));
    training_ = training;
    count_ = shape_numel(x) / channels_;
    if (training) check(count_ > 1, "batchnorm in training needs more than one value per channel (batch size > 1)");
    Shape as4d = x.size() == 4 ? x : Shape{x[0], x[1], 1, 1};
    data_md_ = plain_desc(as4d);
    stat_md_ = dnnl::memory::desc({channels_}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
    nf flags = nf::use_scale | nf::use_shift;
    if (!training) flags = flags | nf::use_global_stats;
    auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    fwd_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(prop, data_md_, eps_, flags), user_scratchpad(), cpu_engine());
    fwd_ = dnnl::batch_normalization_forward(fwd_pd_);
    if (training) {
      mean_ = Tensor::empty({channels_});
      var_ = Tensor::empty({channels_});
    }
    if (training) {
      bwd_pd_ = dnnl::batch_normalization_backward::primitive_desc(
          dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, data_md_, data_md_, eps_, flags),
          user_scratchpad(), cpu_engine(), fwd_pd_);
      bwd_ = dnnl::batch_normalization_backward(bwd_pd_);
    }
    return x;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, wrap(data_md_, *in[0])},
                                                  {DNNL_ARG_DST, wrap(data_md_, y)},
                                                  {DNNL_ARG_SCALE, wrap(stat_md_, *in[1])},
                                                  {DNNL_ARG_SHIFT, wrap(stat_md_, *in[2])}};
    const Tensor& mean = training_ ? mean_ : *in[3];
    const Tensor& var = training_ ? var_ : *in[4];
    args[DNNL_ARG_MEAN] = wrap(stat_md_, mean);
    args[DNNL_ARG_VARIANCE] = wrap(stat_md_, var);
    args[DNNL_ARG_SCRATCHPAD] = scratchpad_for(fwd_pd_.scratchpad_desc());
    fwd_.execute(cpu_stream(), args);
    if (!training_) return;
    // Running statistics: PyTorch keeps the unbiased variance.
    float* rm = in[3]->data<float>();
    float* rv = in[4]->data<float>();
    const float* bm = mean_.data<float>();
    const float* bv = var_.data<float>();
    const float unbias = static_cast<float>(count_) / static_cast<float>(count_ - 1);
    for (int64_t c = 0; c < channels_; ++c) {
      rm[c] = (1.0f - momentum_) * rm[c] + momentum_ * bm[c];
      rv[c] = (1.0f - momentum_) * rv[c] + momentum_ * bv[c] * unbias;
    }
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0] && !din[1] && !din[2]) return;
    check(training_, "batchnorm backward needs the kernel prepared for training");
    ensure_scratch(din);
    Tensor& dx = din[0] ? *din[0] : dx_scratch_;
    Tensor& dgamma = din[1] ? *din[1] : dgamma_scratch_;
    Tensor& dbeta = din[2] ? *din[2] : dbeta_scratch_;
    bwd_.execute(cpu_stream(), {{DNNL_ARG_SRC, wrap(data_md_, *in[0])},
                                {DNNL_ARG_MEAN, wrap(stat_md_, mean_)},
                                {DNNL_ARG_VARIANCE, wrap(stat_md_, var_)},
                                {DNNL_ARG_DIFF_DST, wrap(data_md_, dy)},
                                {DNNL_ARG_SCALE, wrap(stat_md_, *in[1])},
                                {DNNL_ARG_SHIFT, wrap(stat_md_, *in[2])},
                                {DNNL_ARG_DIFF_SRC, wrap(data_md_, dx)},
                                {DNNL_ARG_DIFF_SCALE, wrap(stat_md_, dgamma)},
                                {DNNL_ARG_DIFF_SHIFT, wrap(stat_md_, dbeta)},
                                {DNNL_ARG_SCRATCHPAD, scratchpad_for(bwd_pd_.scratchpad_desc())}});
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override { return 2.0 * shape_numel(in[0]); }

 private:
  void ensure_scratch(const InputGrads& din) {
    if (!din[0] && !dx_scratch_.defined()) dx_scratch_ = Tensor::empty({count_ * channels_});
    if (!din[1] && !dgamma_scratch_.defined()) dgamma_scratch_ = Tensor::empty({channels_});
    if (!din[2] && !dbeta_scratch_.defined()) dbeta_scratch_ = Tensor::empty({channels_});
  }

  float eps_, momentum_;
  bool training_ = false;
  int64_t channels_ = 0, count_ = 0;
  dnnl::memory::desc data_md_, stat_md_;
  dnnl::batch_normalization_forward::primitive_desc fwd_pd_;
  dnnl::batch_normalization_forward fwd_;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd_;
  dnnl::batch_normalization_backward bwd_;
  Tensor mean_, var_, dx_scratch_, dgamma_scratch_, dbeta_scratch_;
};

// y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis.
class LayerNormKernel : public OpKernel {
 public:
  explicit LayerNormKernel(const Node& n) : eps_(static_cast<float>(attr_float(n, "eps", 1e-5))) {}

  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(!in[0].empty(), "layernorm needs an input of rank >= 1");
    width_ = in[0].back();
    rows_ = shape_numel(in[0]) / std::max<int64_t>(width_, 1);
    check(in[1] == Shape{width_} && in[2] == Shape{width_},
          "layernorm: gamma and beta must be [" + std::to_string(width_) + "]");
    mean_ = Tensor::empty({rows_});
    rstd_ = Tensor::empty({rows_});
    return in[0];
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* g = in[1]->data<float>();
    const float* b = in[2]->data<float>();
    float* out = y.data<float>();
    float* mean = mean_.data<float>();
    float* rstd = rstd_.data<float>();
#pragma omp parallel for if (rows_ * width_ > kParallelMinElements)
    for (int64_t r = 0; r < rows_; ++r) {
      const float* xr = x + r * width_;
      double sum = 0.0, sq = 0.0;
      for (int64_t i = 0; i < width_; ++i) sum += xr[i];
      const double m = sum / width_;
      for (int64_t i = 0; i < width_; ++i) sq += (xr[i] - m) * (xr[i] - m);
      const float rs = static_cast<float>(1.0 / std::sqrt(sq / width_ + eps_));
      mean[r] = static_cast<float>(m);
      rstd[r] = rs;
      for (int64_t i = 0; i < width_; ++i) out[r * width_ + i] = (xr[i] - mean[r]) * rs * g[i] + b[i];
    }
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* g = in[1]->data<float>();
    const float* d = dy.data<float>();
    const float* mean = mean_.data<float>();
    const float* rstd = rstd_.data<float>();
    if (din[1] || din[2]) {
      float* dg = din[1] ? din[1]->data<float>() : nullptr;
      float* db = din[2] ? din[2]->data<float>() : nullptr;
      for (int64_t i = 0; i < width_; ++i) {
        if (dg) dg[i] = 0.0f;
        if (db) db[i] = 0.0f;
      }
      for (int64_t r = 0; r < rows_; ++r)
        for (int64_t i = 0; i < width_; ++i) {
          const float xhat = (x[r * width_ + i] - mean[r]) * rstd[r];
          if (dg) dg[i] += d[r * width_ + i] * xhat;
          if (db) db[i] += d[r * width_ + i];
        }
    }
    if (!din[0]) return;
    float* dx = din[0]->data<float>();
#pragma omp parallel for if (rows_ * width_ > kParallelMinElements)
    for (int64_t r = 0; r < rows_; ++r) {
      double sum_dh = 0.0, sum_dh_xhat = 0.0;
      for (int64_t i = 0; i < width_; ++i) {
        const float xhat = (x[r * width_ + i] - mean[r]) * rstd[r];
        const float dh = d[r * width_ + i] * g[i];
        sum_dh += dh;
        sum_dh_xhat += dh * xhat;
      }
      const float a = static_cast<float>(sum_dh / width_), c = static_cast<float>(sum_dh_xhat / width_);
      for (int64_t i = 0; i < width_; ++i) {
        const float xhat = (x[r * width_ + i] - mean[r]) * rstd[r];
        dx[r * width_ + i] = rstd[r] * (d[r * width_ + i] * g[i] - a - xhat * c);
      }
    }
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override { return 5.0 * shape_numel(in[0]); }

 private:
  float eps_;
  int64_t rows_ = 0, width_ = 0;
  Tensor mean_, rstd_;
};

}  // namespace

void register_norm_ops() {
  register_op({"batchnorm", 5, 5, [](int i) { return i < 3; }, [](const Node& n) { return std::make_unique<BatchNormKernel>(n); }});
  register_op({"layernorm", 3, 3, [](int) { return true; }, [](const Node& n) { return std::make_unique<LayerNormKernel>(n); }});
}

}  // namespace leanai
