// conv2d on oneDNN: x [N, C, H, W], weight [OC, C/groups, KH, KW], optional
// bias [OC]; attributes stride, padding, dilation (PyTorch meaning: 1 = none)
// and groups. oneDNN picks its preferred (blocked) layouts; LayoutBridge
// reorders at the edges, and each reorder is skipped when layouts already match.
//
// conv2d_fused is the same convolution followed by an optional batch-norm
// (attribute "batchnorm": {eps, momentum}; its gamma, beta, running mean and
// running variance are the last four inputs), an optional ReLU (a oneDNN
// post-op, or fused into the batch-norm) and an optional max-pool, all kept
// in oneDNN's blocked layout: only
// the pooled output (4x smaller) is reordered back to plain NCHW, and the
// backward pass never leaves the blocked layout. The fuse_conv_blocks pass
// rewrites conv2d -> relu -> maxpool2d chains into it.
#include <dnnl.hpp>

#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/pool_geometry.h"
#include "leanai/kernels/weight_storage.h"

namespace leanai {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using md = dnnl::memory::desc;

class Conv2dKernel : public OpKernel {
 public:
  Conv2dKernel(const Node& n, bool fused)
      : fused_(fused),
        stride_(attr_ints(n, "stride", {1, 1})),
        pad_(attr_ints(n, "padding", {0, 0})),
        dilation_(attr_ints(n, "dilation", {1, 1})),
        groups_(attr_int(n, "groups", 1)) {
    check(stride_.size() == 2 && pad_.size() == 2 && dilation_.size() == 2,
          "conv2d: stride, padding and dilation take one or two integers");
    for (int i = 0; i < 2; ++i)
      check(stride_[i] >= 1 && pad_[i] >= 0 && dilation_[i] >= 1,
            "conv2d: stride and dilation must be >= 1 and padding >= 0");
    check(groups_ >= 1, "conv2d: groups must be >= 1");
    if (!fused_) return;
    const std::string act = attr_string(n, "activation", "none");
    check(act == "relu" || act == "none", "conv2d_fused: activation must be 'relu' or 'none'");
    relu_ = act == "relu";
    if (n.attrs.contains("pool") && !n.attrs["pool"].is_null()) {
      pool_ = PoolGeometry::from_attrs(n.attrs["pool"], "conv2d_fused pool");
      has_pool_ = true;
    }
    if (n.attrs.contains("batchnorm") && !n.attrs["batchnorm"].is_null()) {
      Node bn;
      bn.op = "conv2d_fused batchnorm";
      bn.attrs = n.attrs["batchnorm"];
      check(bn.attrs.is_object(), "conv2d_fused: 'batchnorm' must be an object");
      bn_eps_ = static_cast<float>(attr_float(bn, "eps", 1e-5));
      bn_momentum_ = static_cast<float>(attr_float(bn, "momentum", 0.1));
      check(bn_eps_ > 0.0f && bn_momentum_ >= 0.0f && bn_momentum_ <= 1.0f,
            "conv2d_fused: batchnorm eps must be > 0 and momentum in [0, 1]");
      has_bn_ = true;
    }
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    const Shape& x = in[0];
    const Shape& w = in[1];
    check(x.size() == 4, "conv2d expects input [N, C, H, W], got " + shape_str(x));
    check(w.size() == 4, "conv2d weight must be [OC, C/groups, KH, KW], got " + shape_str(w));
    check(x[1] % groups_ == 0 && w[0] % groups_ == 0, "conv2d: channels must divide by groups");
    check(w[1] * groups_ == x[1], "conv2d: input has " + std::to_string(x[1]) + " channels, the weight expects " +
                                      std::to_string(w[1] * groups_) + " (input " + shape_str(x) + ", weight " +
                                      shape_str(w) + ")");
    const size_t conv_inputs = in.size() - (has_bn_ ? 4 : 0);
    check(conv_inputs == 2 || conv_inputs == 3, "conv2d_fused: wrong number of inputs");
    has_bias_ = conv_inputs == 3;
    if (has_bias_) check(in[2] == Shape{w[0]}, "conv2d bias must be [" + std::to_string(w[0]) + "]");
    bn_at_ = conv_inputs;
    if (has_bn_)
      for (size_t i = bn_at_; i < in.size(); ++i)
        check(in[i] == Shape{w[0]}, "conv2d_fused: batch-norm parameters must be [" + std::to_string(w[0]) + "]");
    Shape y = {x[0], w[0], 0, 0};
    dnnl::memory::dims pad_r(2), dil(2);
    for (int i = 0; i < 2; ++i) {
      int64_t extent = dilation_[i] * (w[2 + i] - 1) + 1;
      int64_t span = x[2 + i] + 2 * pad_[i] - extent;
      check(span >= 0, "conv2d: kernel " + shape_str({w[2], w[3]}) + " is larger than the padded input " +
                           shape_str(x));
      y[2 + i] = span / stride_[i] + 1;
      pad_r[i] = (y[2 + i] - 1) * stride_[i] + extent - x[2 + i] - pad_[i];
      dil[i] = dilation_[i] - 1;
    }
    w_shape_ = w;
    flops_ = 2.0 * shape_numel(y) * w[1] * w[2] * w[3];

    auto& eng = cpu_engine();
    dnnl::memory::dims strides(stride_.begin(), stride_.end()), pad_l(pad_.begin(), pad_.end());
    dnnl::memory::dims wdims = groups_ == 1 ? to_dims(w) : dnnl::memory::dims{groups_, w[0] / groups_, w[1], w[2], w[3]};
    md x_any(to_dims(x), dt::f32, tag::any), w_any(wdims, dt::f32, tag::any), y_any(to_dims(y), dt::f32, tag::any);
    md b_md(dnnl::memory::dims{w[0]}, dt::f32, tag::a);
    x_plain_ = plain_desc(x);
    w_plain_ = md(wdims, dt::f32, groups_ == 1 ? tag::oihw : tag::goihw);
    y_plain_ = plain_desc(y);

    auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    auto fdesc = has_bias_ ? dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, x_any, w_any,
                                                             b_md, y_any, strides, dil, pad_l, pad_r)
                           : dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, x_any, w_any,
                                                             y_any, strides, dil, pad_l, pad_r);
    dnnl::primitive_attr attr;
    if (relu_ && !has_bn_) {  // with batch-norm, the ReLU follows it instead
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    fwd_pd_ = dnnl::convolution_forward::primitive_desc(fdesc, user_scratchpad(attr), eng);
    fwd_ = dnnl::convolution_forward(fwd_pd_);
    fx_.prepare(x_plain_, fwd_pd_.src_desc(), true);
    fw_.prepare(w_plain_, fwd_pd_.weights_desc(), true);
    fy_.prepare(y_plain_, fwd_pd_.dst_desc(), false);
    Shape out = y;
    if (fused_) out = prepare_fused(y, training);
    if (!training) return out;
    // The fused backward hands oneDNN diff_dst in the forward's blocked layout.
    if (fused_) y_any = fwd_pd_.dst_desc();

    auto bd_desc = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, x_any, w_any, y_any,
                                                         strides, dil, pad_l, pad_r);
    bd_pd_ = dnnl::convolution_backward_data::primitive_desc(bd_desc, user_scratchpad(), eng, fwd_pd_);
    bd_ = dnnl::convolution_backward_data(bd_pd_);
    bd_dy_.prepare(y_plain_, bd_pd_.diff_dst_desc(), true);
    bd_w_.prepare(w_plain_, bd_pd_.weights_desc(), true);
    bd_dx_.prepare(x_plain_, bd_pd_.diff_src_desc(), false);

    auto bw_desc = has_bias_ ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, x_any,
                                                                        w_any, b_md, y_any, strides, dil, pad_l, pad_r)
                             : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, x_any,
                                                                        w_any, y_any, strides, dil, pad_l, pad_r);
    bw_pd_ = dnnl::convolution_backward_weights::primitive_desc(bw_desc, user_scratchpad(), eng, fwd_pd_);
    bw_ = dnnl::convolution_backward_weights(bw_pd_);
    bw_x_.prepare(x_plain_, bw_pd_.src_desc(), true);
    bw_dy_.prepare(y_plain_, bw_pd_.diff_dst_desc(), true);
    bw_dw_.prepare(w_plain_, bw_pd_.diff_weights_desc(), false);
    return out;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    run_conv_forward(in, y);
    if (!fused_) return fy_.finish(y);
    if (has_bn_) run_bn_forward(in);
    if (!has_pool_) {
      dnnl::memory plain = wrap(y_plain_, y);
      return to_plain_.execute(cpu_stream(), stage_out_, plain);
    }
    std::unordered_map<int, dnnl::memory> pargs = {{DNNL_ARG_SRC, stage_out_}, {DNNL_ARG_DST, fp_.out(y)}};
    if (workspace_) pargs[DNNL_ARG_WORKSPACE] = workspace_;
    pargs[DNNL_ARG_SCRATCHPAD] = scratchpad_for(pool_fwd_pd_.scratchpad_desc());
    pool_fwd_.execute(cpu_stream(), pargs);
    fp_.finish(y);
  }

  void run_conv_forward(const Inputs& in, const Tensor& y) {
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, fx_.in(*in[0])}, {DNNL_ARG_WEIGHTS, fw_.in(*in[1])},
        {DNNL_ARG_DST, fused_ ? conv_out_ : fy_.out(y)}};
    if (has_bias_) args[DNNL_ARG_BIAS] = wrap(md({w_shape_[0]}, dt::f32, tag::a), *in[2]);
    args[DNNL_ARG_SCRATCHPAD] = scratchpad_for(fwd_pd_.scratchpad_desc());
    fwd_.execute(cpu_stream(), args);
  }

  // Batch-norm on the blocked convolution output; in training it normalizes
  // with the batch statistics and updates the running ones (PyTorch's rule).
  void run_bn_forward(const Inputs& in) {
    const Tensor& gamma = *in[bn_at_];
    const Tensor& beta = *in[bn_at_ + 1];
    const Tensor& running_mean = *in[bn_at_ + 2];
    const Tensor& running_var = *in[bn_at_ + 3];
    std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, conv_out_}, {DNNL_ARG_DST, bn_out_}, {DNNL_ARG_SCALE, wrap(stat_md_, gamma)},
        {DNNL_ARG_SHIFT, wrap(stat_md_, beta)},
        {DNNL_ARG_MEAN, wrap(stat_md_, training_ ? bn_mean_ : running_mean)},
        {DNNL_ARG_VARIANCE, wrap(stat_md_, training_ ? bn_var_ : running_var)},
        {DNNL_ARG_SCRATCHPAD, scratchpad_for(bn_fwd_pd_.scratchpad_desc())}};
    if (bn_workspace_) args[DNNL_ARG_WORKSPACE] = bn_workspace_;
    bn_fwd_.execute(cpu_stream(), args);
    if (!training_) return;
    float* rm = running_mean.data<float>();
    float* rv = running_var.data<float>();
    const float* bm = bn_mean_.data<float>();
    const float* bv = bn_var_.data<float>();
    const float unbias = static_cast<float>(bn_count_) / static_cast<float>(bn_count_ - 1);
    for (int64_t c = 0; c < w_shape_[0]; ++c) {
      rm[c] = (1.0f - bn_momentum_) * rm[c] + bn_momentum_ * bm[c];
      rv[c] = (1.0f - bn_momentum_) * rv[c] + bn_momentum_ * bv[c] * unbias;
    }
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    check(static_cast<bool>(bw_), "conv2d backward needs the kernel prepared for training");
    // The reordered diff_dst is shared by both passes when they want the same layout.
    dnnl::memory dy_w = fused_ ? fused_diff_dst(in, dy, din) : bw_dy_.in(dy);
    if (din[1] || (has_bias_ && din[2])) {
      // Reuse the forward pass's reordered src when the layouts agree.
      dnnl::memory x_mem = bw_pd_.src_desc() == fwd_pd_.src_desc() && fx_.needed() ? fx_.in_cached() : bw_x_.in(*in[0]);
      Tensor& dw = din[1] ? *din[1] : scratch_w(in[1]->shape());
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, x_mem}, {DNNL_ARG_DIFF_DST, dy_w}, {DNNL_ARG_DIFF_WEIGHTS, bw_dw_.out(dw)}};
      if (has_bias_) {
        Tensor& db = din[2] ? *din[2] : scratch_b();
        args[DNNL_ARG_DIFF_BIAS] = wrap(md({w_shape_[0]}, dt::f32, tag::a), db);
      }
      args[DNNL_ARG_SCRATCHPAD] = scratchpad_for(bw_pd_.scratchpad_desc());
      bw_.execute(cpu_stream(), args);
      bw_dw_.finish(dw);
    }
    if (din[0]) {
      dnnl::memory dy_d = fused_ || (bd_pd_.diff_dst_desc() == bw_pd_.diff_dst_desc() && bw_dy_.needed()) ? dy_w : bd_dy_.in(dy);
      bd_.execute(cpu_stream(), {{DNNL_ARG_DIFF_DST, dy_d}, {DNNL_ARG_WEIGHTS, bd_w_.in(*in[1])},
                                 {DNNL_ARG_DIFF_SRC, bd_dx_.out(*din[0])},
                                 {DNNL_ARG_SCRATCHPAD, scratchpad_for(bd_pd_.scratchpad_desc())}});
      bd_dx_.finish(*din[0]);
    }
  }

  double flops(const std::vector<Shape>&, const Shape&) const override { return flops_; }

 private:
  // Sets up what follows the convolution in conv2d_fused; returns the output shape.
  Shape prepare_fused(const Shape& y, bool training) {
    const md conv_md = fwd_pd_.dst_desc();
    training_ = training;
    conv_out_ = dnnl::memory(conv_md, cpu_engine());
    if (training) conv_diff_ = dnnl::memory(conv_md, cpu_engine());
    stage_out_ = conv_out_;
    stage_diff_ = conv_diff_;
    if (has_bn_) prepare_bn(conv_md, y, training);
    if (!has_pool_) {
      to_plain_ = dnnl::reorder(stage_out_, dnnl::memory(y_plain_, cpu_engine(), DNNL_MEMORY_NONE));
      if (training) from_plain_ = dnnl::reorder(dnnl::memory(y_plain_, cpu_engine(), DNNL_MEMORY_NONE), stage_diff_);
      return y;
    }
    dnnl::memory::dims pad_r;
    const Shape p = pool_.output(y, pad_r);
    const md p_any(to_dims(p), dt::f32, tag::any);
    const dnnl::memory::dims k(pool_.kernel.begin(), pool_.kernel.end()), s(pool_.stride.begin(), pool_.stride.end()),
        pl(pool_.pad.begin(), pool_.pad.end());
    auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    pool_fwd_pd_ = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(prop, dnnl::algorithm::pooling_max, conv_md, p_any, s, k, pl, pad_r), user_scratchpad(),
        cpu_engine());
    pool_fwd_ = dnnl::pooling_forward(pool_fwd_pd_);
    fp_.prepare(plain_desc(p), pool_fwd_pd_.dst_desc(), false);
    if (training) {
      workspace_ = dnnl::memory(pool_fwd_pd_.workspace_desc(), cpu_engine());
      pool_bwd_pd_ = dnnl::pooling_backward::primitive_desc(
          dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, conv_md, pool_fwd_pd_.dst_desc(), s, k, pl, pad_r),
          user_scratchpad(), cpu_engine(), pool_fwd_pd_);
      pool_bwd_ = dnnl::pooling_backward(pool_bwd_pd_);
      bp_.prepare(plain_desc(p), pool_bwd_pd_.diff_dst_desc(), true);
    }
    return p;
  }

  void prepare_bn(const md& conv_md, const Shape& y, bool training) {
    check(!training || y[0] * y[2] * y[3] > 1,
          "batchnorm in training needs more than one value per channel (batch size > 1)");
    bn_count_ = y[0] * y[2] * y[3];
    stat_md_ = md({w_shape_[0]}, dt::f32, tag::a);
    using nf = dnnl::normalization_flags;
    nf flags = nf::use_scale | nf::use_shift;
    if (relu_) flags = flags | nf::fuse_norm_relu;
    if (!training) flags = flags | nf::use_global_stats;
    auto prop = training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    bn_fwd_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(prop, conv_md, bn_eps_, flags), user_scratchpad(), cpu_engine());
    bn_fwd_ = dnnl::batch_normalization_forward(bn_fwd_pd_);
    bn_out_ = dnnl::memory(conv_md, cpu_engine());
    stage_out_ = bn_out_;
    if (!training) return;
    bn_mean_ = Tensor::empty({w_shape_[0]});
    bn_var_ = Tensor::empty({w_shape_[0]});
    if (relu_) bn_workspace_ = dnnl::memory(bn_fwd_pd_.workspace_desc(), cpu_engine());
    bn_bwd_pd_ = dnnl::batch_normalization_backward::primitive_desc(
        dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, conv_md, conv_md, bn_eps_, flags),
        user_scratchpad(), cpu_engine(), bn_fwd_pd_);
    bn_bwd_ = dnnl::batch_normalization_backward(bn_bwd_pd_);
    bn_diff_ = dnnl::memory(conv_md, cpu_engine());
    stage_diff_ = bn_diff_;
    dgamma_scratch_ = Tensor::empty({w_shape_[0]});
    dbeta_scratch_ = Tensor::empty({w_shape_[0]});
  }

  // d(loss)/d(conv output), in the convolution's blocked layout: through the
  // pool, then the batch-norm (with its fused ReLU) or the ReLU mask (the
  // forward output is > 0 exactly where ReLU passed).
  dnnl::memory fused_diff_dst(const Inputs& in, const Tensor& dy, const InputGrads& din) {
    if (has_pool_) {
      pool_bwd_.execute(cpu_stream(), {{DNNL_ARG_DIFF_DST, bp_.in(dy)}, {DNNL_ARG_WORKSPACE, workspace_},
                                       {DNNL_ARG_DIFF_SRC, stage_diff_},
                                       {DNNL_ARG_SCRATCHPAD, scratchpad_for(pool_bwd_pd_.scratchpad_desc())}});
    } else {
      dnnl::memory plain = wrap(y_plain_, dy);
      from_plain_.execute(cpu_stream(), plain, stage_diff_);
    }
    if (has_bn_) {
      Tensor& dgamma = din[bn_at_] ? *din[bn_at_] : dgamma_scratch_;
      Tensor& dbeta = din[bn_at_ + 1] ? *din[bn_at_ + 1] : dbeta_scratch_;
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC, conv_out_}, {DNNL_ARG_MEAN, wrap(stat_md_, bn_mean_)},
          {DNNL_ARG_VARIANCE, wrap(stat_md_, bn_var_)}, {DNNL_ARG_DIFF_DST, bn_diff_},
          {DNNL_ARG_SCALE, wrap(stat_md_, *in[bn_at_])}, {DNNL_ARG_SHIFT, wrap(stat_md_, *in[bn_at_ + 1])},
          {DNNL_ARG_DIFF_SRC, conv_diff_}, {DNNL_ARG_DIFF_SCALE, wrap(stat_md_, dgamma)},
          {DNNL_ARG_DIFF_SHIFT, wrap(stat_md_, dbeta)},
          {DNNL_ARG_SCRATCHPAD, scratchpad_for(bn_bwd_pd_.scratchpad_desc())}};
      if (bn_workspace_) args[DNNL_ARG_WORKSPACE] = bn_workspace_;
      bn_bwd_.execute(cpu_stream(), args);
      return conv_diff_;
    }
    if (relu_) {
      const float* __restrict y = static_cast<const float*>(conv_out_.get_data_handle());
      float* __restrict d = static_cast<float*>(conv_diff_.get_data_handle());
      const int64_t n = static_cast<int64_t>(fwd_pd_.dst_desc().get_size() / sizeof(float));
      for_chunks(n, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
      });
    }
    return conv_diff_;
  }

  Tensor& scratch_w(const Shape& s) {
    if (!dw_scratch_.defined()) dw_scratch_ = Tensor::empty(s);
    return dw_scratch_;
  }
  Tensor& scratch_b() {
    if (!db_scratch_.defined()) db_scratch_ = Tensor::empty({w_shape_[0]});
    return db_scratch_;
  }

  bool fused_ = false, relu_ = false, has_pool_ = false, has_bn_ = false, training_ = false;
  size_t bn_at_ = 0;  // index of gamma among the inputs
  float bn_eps_ = 1e-5f, bn_momentum_ = 0.1f;
  int64_t bn_count_ = 0;
  md stat_md_;
  dnnl::batch_normalization_forward::primitive_desc bn_fwd_pd_;
  dnnl::batch_normalization_forward bn_fwd_;
  dnnl::batch_normalization_backward::primitive_desc bn_bwd_pd_;
  dnnl::batch_normalization_backward bn_bwd_;
  dnnl::memory bn_out_, bn_diff_, bn_workspace_;
  dnnl::memory stage_out_, stage_diff_;  // the last stage before the pool: conv or batch-norm output
  Tensor bn_mean_, bn_var_, dgamma_scratch_, dbeta_scratch_;
  std::vector<int64_t> stride_, pad_, dilation_;
  int64_t groups_;
  PoolGeometry pool_;
  dnnl::memory conv_out_, conv_diff_, workspace_;
  dnnl::reorder to_plain_, from_plain_;
  dnnl::pooling_forward::primitive_desc pool_fwd_pd_;
  dnnl::pooling_forward pool_fwd_;
  dnnl::pooling_backward::primitive_desc pool_bwd_pd_;
  dnnl::pooling_backward pool_bwd_;
  LayoutBridge fp_, bp_;
  bool has_bias_ = false;
  double flops_ = 0;
  Shape w_shape_;
  md x_plain_, w_plain_, y_plain_;
  dnnl::convolution_forward::primitive_desc fwd_pd_;
  dnnl::convolution_forward fwd_;
  dnnl::convolution_backward_data::primitive_desc bd_pd_;
  dnnl::convolution_backward_data bd_;
  dnnl::convolution_backward_weights::primitive_desc bw_pd_;
  dnnl::convolution_backward_weights bw_;
  LayoutBridge fx_, fw_, fy_, bd_dy_, bd_w_, bd_dx_, bw_x_, bw_dy_, bw_dw_;
  Tensor dw_scratch_, db_scratch_;
};

}  // namespace

void register_conv_ops() {
  // Up to two fused residual adds (see post_ops.h) ride after conv2d's own inputs.
  OpInfo conv{"conv2d", 2, 5, [](int) { return true; }, [](const Node& n) {
                return with_post_ops(n, with_weight_storage(n, std::make_unique<Conv2dKernel>(n, false)), 3);
              }};
  conv.accepts_dtype = layer_accepts_dtype;
  register_op(conv);
  register_op({"conv2d_fused", 2, 7, [](int) { return true; }, [](const Node& n) { return std::make_unique<Conv2dKernel>(n, true); }});
}

}  // namespace leanai
