// maxpool2d and avgpool2d on oneDNN (plain NCHW; pooling is memory-bound, so
// a layout change would cost more than it saves), global_avgpool by hand.
// Attributes: kernel, stride (default = kernel), padding; avgpool also
// count_include_pad (default 1, as in PyTorch).
#include <dnnl.hpp>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/pool_geometry.h"

namespace leanai {
namespace {

class Pool2dKernel : public OpKernel {
 public:
  Pool2dKernel(const Node& n, bool is_max) : is_max_(is_max) {
    const PoolGeometry g = PoolGeometry::from_attrs(n.attrs, n.op);
    kernel_ = g.kernel;
    stride_ = g.stride;
    pad_ = g.pad;
    include_pad_ = attr_int(n, "count_include_pad", 1) != 0;
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    const Shape& x = in[0];
    check(x.size() == 4, std::string(is_max_ ? "maxpool2d" : "avgpool2d") + " expects [N, C, H, W], got " + shape_str(x));
    dnnl::memory::dims pad_r;
    const Shape y = PoolGeometry{kernel_, stride_, pad_}.output(x, pad_r);
    auto alg = is_max_ ? dnnl::algorithm::pooling_max
                       : (include_pad_ ? dnnl::algorithm::pooling_avg_include_padding
                                       : dnnl::algorithm::pooling_avg_exclude_padding);
    x_md_ = plain_desc(x);
    y_md_ = plain_desc(y);
    dnnl::memory::dims k(kernel_.begin(), kernel_.end()), s(stride_.begin(), stride_.end()),
        pl(pad_.begin(), pad_.end());
    auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    fwd_pd_ = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(prop, alg, x_md_, y_md_, s, k, pl, pad_r), user_scratchpad(), cpu_engine());
    fwd_ = dnnl::pooling_forward(fwd_pd_);
    if (training && is_max_) workspace_ = dnnl::memory(fwd_pd_.workspace_desc(), cpu_engine());
    if (training) {
      bwd_pd_ = dnnl::pooling_backward::primitive_desc(dnnl::pooling_backward::desc(alg, x_md_, y_md_, s, k, pl, pad_r),
                                                       user_scratchpad(), cpu_engine(), fwd_pd_);
      bwd_ = dnnl::pooling_backward(bwd_pd_);
    }
    flops_ = static_cast<double>(shape_numel(y)) * kernel_[0] * kernel_[1];
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, wrap(x_md_, *in[0])}, {DNNL_ARG_DST, wrap(y_md_, y)}};
    if (workspace_) args[DNNL_ARG_WORKSPACE] = workspace_;
    args[DNNL_ARG_SCRATCHPAD] = scratchpad_for(fwd_pd_.scratchpad_desc());
    fwd_.execute(cpu_stream(), args);
  }

  void backward(const Inputs&, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    check(static_cast<bool>(bwd_), "pooling backward needs the kernel prepared for training");
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_DIFF_DST, wrap(y_md_, dy)},
                                                  {DNNL_ARG_DIFF_SRC, wrap(x_md_, *din[0])}};
    if (workspace_) args[DNNL_ARG_WORKSPACE] = workspace_;
    args[DNNL_ARG_SCRATCHPAD] = scratchpad_for(bwd_pd_.scratchpad_desc());
    bwd_.execute(cpu_stream(), args);
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return flops_; }

 private:
  bool is_max_;
  bool include_pad_ = true;
  std::vector<int64_t> kernel_, stride_, pad_;
  double flops_ = 0;
  dnnl::memory::desc x_md_, y_md_;
  dnnl::pooling_forward::primitive_desc fwd_pd_;
  dnnl::pooling_forward fwd_;
  dnnl::pooling_backward::primitive_desc bwd_pd_;
  dnnl::pooling_backward bwd_;
  dnnl::memory workspace_;
};

// [N, C, H, W] -> [N, C, 1, 1], the mean over each channel's plane.
class GlobalAvgPoolKernel : public OpKernel {
 public:
  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0].size() == 4, "global_avgpool expects [N, C, H, W], got " + shape_str(in[0]));
    planes_ = in[0][0] * in[0][1];
    area_ = in[0][2] * in[0][3];
    return {in[0][0], in[0][1], 1, 1};
  }
  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* x = in[0]->data<float>();
    float* out = y.data<float>();
#pragma omp parallel for if (planes_ * area_ > kParallelMinElements)
    for (int64_t p = 0; p < planes_; ++p) {
      float sum = 0.0f;
      for (int64_t i = 0; i < area_; ++i) sum += x[p * area_ + i];
      out[p] = sum / static_cast<float>(area_);
    }
  }
  void backward(const Inputs&, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    const float* g = dy.data<float>();
    float* dx = din[0]->data<float>();
#pragma omp parallel for if (planes_ * area_ > kParallelMinElements)
    for (int64_t p = 0; p < planes_; ++p)
      for (int64_t i = 0; i < area_; ++i) dx[p * area_ + i] = g[p] / static_cast<float>(area_);
  }
  double flops(const std::vector<Shape>& in, const Shape&) const override { return static_cast<double>(shape_numel(in[0])); }

 private:
  int64_t planes_ = 0, area_ = 0;
};

}  // namespace

void register_pool_ops() {
  register_op({"maxpool2d", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<Pool2dKernel>(n, true); }});
  register_op({"avgpool2d", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<Pool2dKernel>(n, false); }});
  register_op({"global_avgpool", 1, 1, [](int) { return true; }, [](const Node&) { return std::make_unique<GlobalAvgPoolKernel>(); }});
}

}  // namespace leanai
