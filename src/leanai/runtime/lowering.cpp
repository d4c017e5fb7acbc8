// Lowering: graph nodes (after the inference passes) to oneDNN primitives with
// layouts oneDNN picks, reorders only where a consumer wants another layout,
// and the Executor's kernel for anything else. Quantized layers (qlinear,
// qconv2d, compute = "bf16") go to lower_quantized.cpp; values they leave as
// u8/s8/bf16 reach other ops through input_of(), which converts them to f32.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/pool_geometry.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/weight_storage.h"
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/lower_common.h"
#include "leanai/runtime/lower_packed_linear.h"
#include "leanai/runtime/lower_quantized.h"
#include "leanai/runtime/plan_instance.h"

namespace leanai::runtime {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

md any_desc(const Shape& s) { return md(to_dims(s), dt::f32, tag::any); }

// "nchw", "nhwc", "nChw16c", "OIhw16i16o"-style names for the step report
// (oneDNN 2.6 has no public query for a descriptor's format tag).
std::string layout_name(const md& d) {
  const dnnl_memory_desc_t& c = d.data;
  if (c.format_kind != dnnl_blocked) return "any";
  const auto& b = c.format_desc.blocking;
  std::vector<int> order(c.ndims);
  for (int i = 0; i < c.ndims; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
  const char* letters = c.ndims == 4 ? "nchw" : c.ndims == 2 ? "nc" : "abcdef";
  std::string name;
  for (int i : order) {
    bool blocked = false;
    for (int k = 0; k < b.inner_nblks; ++k) blocked |= b.inner_idxs[k] == i;
    name += blocked ? static_cast<char>(std::toupper(letters[i])) : letters[i];
  }
  for (int k = 0; k < b.inner_nblks; ++k) name += std::to_string(b.inner_blks[k]) + letters[b.inner_idxs[k]];
  return name;
}

// The caller's input copied into the arena in its own layout (for a kernel
// step, which reads the arena, or as the output of a model that returns its
// input): a memcpy, where a oneDNN reorder doing the same took 1.5-1.9 us
// per call at batch 1 here (16 to 784 floats).
class CopyStep : public OneToOneStep {
 public:
  int64_t bytes = 0;
  void run() override {
    const char* from = static_cast<const char*>(src());
    char* to = static_cast<char*>(dst());
    // Counted in bytes, so the copy splits over the threads from 256 KB.
    for_chunks(bytes, [&](int64_t begin, int64_t end) { std::memcpy(to + begin, from + begin, end - begin); });
  }
};

class Lowering : public LoweringContext {
 public:
  Lowering(const Graph& g, int64_t batch, bool tune, bool allow_winograd, PackedWeights& weights)
      : g_(g), tune_(tune), allow_winograd_(allow_winograd), weights_(weights), uses_(node_uses(g)) {
    inst_ = std::make_unique<Instance>();
    inst_->batch = batch;
    node_value_.assign(g.nodes().size(), -1);
    readers_left_ = uses_.count;
  }

  std::unique_ptr<Instance> run() {
    check(g_.inputs().size() == 1, "plan: the model must have exactly one input");
    for (const Node& n : g_.nodes()) {
      if (n.op == "param") continue;
      if (n.op == "input") {
        check(g_.input_dtype(n.id) == DType::f32, "plan: the model input must be f32");
        Shape s = {inst_->batch};
        for (int64_t d : g_.input_sample_shape(n.id)) s.push_back(d);
        const int v = new_value(s, plain_desc(s));
        inst_->values[v].external = true;
        inst_->input_value = v;
        node_value_[n.id] = v;
        continue;
      }
      lower(n);
      for (int i : n.inputs) --readers_left_[i];
    }
    int out = input_of(g_.output(), "output");
    out = inst_->values[inst_->root(out)].external ? copy_value(out, "output") : as_plain(out, "output");
    inst_->output_value = out;
    inst_->memory.weight_bytes = weight_bytes_;
    inst_->finalize();
    return std::move(inst_);
  }

  // ---- LoweringContext, for the quantized lowering (lower_quantized.cpp) ----
  const Graph& graph() const override { return g_; }
  Instance& instance() override { return *inst_; }
  PackedWeights& weights() override { return weights_; }
  int node_value(int node) const override { return node_value_[node]; }
  void set_node_value(int node, int value) override { node_value_[node] = value; }
  int as_layout(int v, const md& want, const std::string& name) override {
    return val(v).desc == want ? v : reorder_to(v, want, name + " (reorder)");
  }
  // The destination value of a layer with a fused add (`sum` post-op): the
  // operand's own storage when nothing reads it afterwards, else a copy.
  int sum_destination(const Node& n, int operand, const md& dst_desc) override {
    const int operand_node = n.inputs.back();
    if (!storage_read_later(operand_node, operand) && val(operand).desc == dst_desc)
      return new_value(val(operand).shape, dst_desc, inst_->root(operand));
    return reorder_to(operand, dst_desc, node_name(n) + " (residual copy)");
  }
  void count_weight_bytes(int64_t bytes) override { weight_bytes_ += bytes; }

 private:
  // A node's value as f32 (u8/s8 values of an int8 region are dequantized once).
  int input_of(int node, const std::string& reader) { return dequantized(*this, node_value_[node], reader); }

  // ---- values and generic steps ----
  int new_value(const Shape& shape, const md& desc, int root = -1) {
    Value v;
    v.shape = shape;
    v.desc = desc;
    v.root = root;
    inst_->values.push_back(std::move(v));
    return static_cast<int>(inst_->values.size()) - 1;
  }
  const Value& val(int v) const { return inst_->values[v]; }
  bool is_param(int node) const { return g_.node(node).op == "param"; }
  const Tensor& param(int node) const {
    auto it = f32_weights_.find(node);
    return it != f32_weights_.end() ? it->second : g_.params().at(g_.node(node).name).value;
  }
  std::string node_name(const Node& n) const { return n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name; }

  PrimitiveStep& add_primitive(dnnl::primitive p, const md& scratch, const std::string& name, const std::string& kind,
                               const std::string& detail) {
    auto step = std::make_unique<PrimitiveStep>();
    step->primitive = std::move(p);
    step->scratchpad_desc = scratch;
    step->info = {name, kind, detail};
    auto& ref = *step;
    inst_->steps.push_back(std::move(step));
    return ref;
  }

  static void reads(Step& s, int v) { s.reads.push_back(v); }

  // `want` by value: it may be a reference into the value table (as_layout's
  // callers pass val(a).desc), which new_value can reallocate.
  int reorder_to(int v, const md want, const std::string& name) {
    const int out = new_value(val(v).shape, want);
    inst_->values[out].quant = val(v).quant;  // a layout change keeps what u8/s8 bytes mean
    auto pd = dnnl::reorder::primitive_desc(cpu_engine(), val(v).desc, cpu_engine(), want, user_scratchpad());
    auto& s = add_primitive(dnnl::reorder(pd), pd.scratchpad_desc(), name, "reorder",
                            layout_name(val(v).desc) + " -> " + layout_name(want));
    s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
    s.reads = {v};
    s.writes = {out};
    return out;
  }
  int as_plain(int v, const std::string& name) {
    return as_layout(v, plain_desc(val(v).shape, val(v).desc.data_type()), name);
  }
  int copy_value(int v, const std::string& name) {
    const md desc = val(v).desc;  // by value: new_value can reallocate the value table
    const auto quant = val(v).quant;
    const int out = new_value(val(v).shape, desc);
    inst_->values[out].quant = quant;
    auto step = std::make_unique<CopyStep>();
    step->bytes = static_cast<int64_t>(desc.get_size());
    step->reads = {v};
    step->writes = {out};
    step->info = {name + " (copy)", "copy", "leanai memcpy, " + layout_name(desc)};
    inst_->steps.push_back(std::move(step));
    return out;
  }

  // ---- per-op lowering ----
  void lower(const Node& n) {
    if (node_value_[n.id] >= 0) return;  // lowered with the layer before it (a fused pool)
    if (n.op == "qlinear" || n.op == "qconv2d") {
      if (!lower_quantized_layer(*this, n)) lower_kernel(n);
      return;
    }
    if ((n.op == "conv2d" || n.op == "linear") && (computes_in_bf16(n) || !f32_weight(n))) {
      if (computes_in_bf16(n) && lower_bf16_layer(*this, n)) return;
      use_f32_weights(n);  // f32 compute on weights converted once (bf16-rounded for compute = "bf16")
    }
    if (n.op == "conv2d") return lower_conv(n);
    if (n.op == "linear") return lower_linear(n);
    if (n.op == "maxpool2d" || n.op == "avgpool2d" || n.op == "global_avgpool") return lower_pool(n);
    if (n.op == "batchnorm" && all_params(n, 1)) return lower_batchnorm(n);
    if (is_fusable_activation(n.op)) return lower_activation(n);
    if ((n.op == "add" || n.op == "mul") && lower_binary(n)) return;
    if (n.op == "flatten" || n.op == "reshape") return lower_reshape(n);
    lower_kernel(n);
  }

  bool f32_weight(const Node& n) const { return !is_param(n.inputs[1]) || param(n.inputs[1]).dtype() == DType::f32; }
  void use_f32_weights(const Node& n) {
    if (!is_param(n.inputs[1])) return;
    const Tensor& w = g_.params().at(g_.node(n.inputs[1]).name).value;
    const bool round = computes_in_bf16(n);
    f32_weights_[n.inputs[1]] = weights_.derived(w, round ? "f32 of bf16" : "f32", [&] {
      return (round ? w.to(DType::bf16) : w).to(DType::f32);
    });
  }

  bool all_params(const Node& n, size_t from) const {
    for (size_t i = from; i < n.inputs.size(); ++i)
      if (!is_param(n.inputs[i])) return false;
    return true;
  }

  // The post-ops' oneDNN form; a fused add becomes an in-place `sum`: the
  // layer writes into the operand's storage (or a copy of it when the operand
  // is read later, or is the caller's input).
  struct Fused {
    dnnl::post_ops ops;
    std::vector<int> add_values;
  };
  Fused fused_post_ops(const Node& n, size_t own_inputs) {
    Fused f;
    std::vector<PostOp> ops = parse_post_ops(n);
    for (size_t i = own_inputs; i < n.inputs.size(); ++i) f.add_values.push_back(input_of(n.inputs[i], node_name(n)));
    check(f.add_values.size() <= 1, n.op + " '" + n.name + "': the runtime fuses at most one residual add");
    std::vector<md> descs;
    for (int v : f.add_values) descs.push_back(val(v).desc);
    f.ops = to_dnnl_post_ops(ops, descs, 0);
    return f;
  }
  // Whether the storage behind `value` (read now by the node being lowered,
  // through `node`) is still needed by a node not lowered yet, or is the
  // caller's input, or the graph output.
  bool storage_read_later(int node, int value) const {
    const int root = inst_->root(value);
    if (val(root).external || node == g_.output() || readers_left_[node] > 1) return true;
    for (size_t k = 0; k < node_value_.size(); ++k)
      if (static_cast<int>(k) != node && node_value_[k] >= 0 && inst_->root(node_value_[k]) == root &&
          (readers_left_[k] > 0 || static_cast<int>(k) == g_.output()))
        return true;
    return false;
  }

  dnnl::memory packed_weights(const Tensor& w, const md& plain, const md& packed) {
    dnnl::memory m = weights_.get(w, plain, packed);
    inst_->packed_weights.push_back(m.get_data_handle());
    return m;
  }
  dnnl::memory bias_memory(const Tensor& b) {
    weight_bytes_ += static_cast<int64_t>(b.nbytes());
    return wrap(md({b.numel()}, dt::f32, tag::a), b);
  }

  void lower_conv(const Node& n) {
    const size_t own = n.inputs.size() - count_add_post_ops(parse_post_ops(n));
    if (!is_param(n.inputs[1]) || (own == 3 && !is_param(n.inputs[2]))) return lower_kernel(n);
    int x = input_of(n.inputs[0], node_name(n));
    const Tensor& w = param(n.inputs[1]);
    const int64_t groups = attr_int(n, "groups", 1);
    std::vector<int64_t> stride = attr_ints(n, "stride", {1, 1}), pad = attr_ints(n, "padding", {0, 0}),
                         dilation = attr_ints(n, "dilation", {1, 1});
    // Shapes and right padding exactly as the Executor's kernel computes them.
    std::vector<Shape> in_shapes = {val(x).shape, w.shape()};
    if (own == 3) in_shapes.push_back(param(n.inputs[2]).shape());
    Node base = n;
    base.attrs.erase("post_ops");
    base.inputs.resize(own);
    const Shape y = find_op("conv2d").make(base)->prepare(in_shapes, false);
    dnnl::memory::dims strides(stride.begin(), stride.end()), pad_l(pad.begin(), pad.end()), pad_r(2), dil(2);
    for (int i = 0; i < 2; ++i) {
      const int64_t extent = dilation[i] * (w.dim(2 + i) - 1) + 1;
      pad_r[i] = (y[2 + i] - 1) * stride[i] + extent - val(x).shape[2 + i] - pad[i];
      dil[i] = dilation[i] - 1;
    }
    dnnl::memory::dims wdims =
        groups == 1 ? to_dims(w.shape()) : dnnl::memory::dims{groups, w.dim(0) / groups, w.dim(1), w.dim(2), w.dim(3)};
    const md w_plain(wdims, dt::f32, groups == 1 ? tag::oihw : tag::goihw);
    Fused fused = fused_post_ops(n, own);
    dnnl::primitive_attr attr;
    attr.set_post_ops(fused.ops);
    const md b_md = own == 3 ? md({w.dim(0)}, dt::f32, tag::a) : md();
    // Candidates: direct convolution in the layouts oneDNN prefers, direct in
    // 16-channel blocks, and Winograd F(4x4, 3x3) for 3x3 stride-1 layers
    // (about 2x fewer multiplies; rounding differs from direct by ~1e-6 relative).
    auto make_pd = [&](dnnl::algorithm alg, const md& src, const md& dst) {
      auto desc = own == 3 ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src,
                                                             md(wdims, dt::f32, tag::any), b_md, dst, strides, dil,
                                                             pad_l, pad_r)
                           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src,
                                                             md(wdims, dt::f32, tag::any), dst, strides, dil, pad_l,
                                                             pad_r);
      return dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(attr), cpu_engine());
    };
    std::vector<std::pair<std::string, dnnl::convolution_forward::primitive_desc>> candidates;
    auto try_add = [&](const std::string& name, dnnl::algorithm alg, const md& src, const md& dst) {
      try {
        auto pd = make_pd(alg, src, dst);
        if (std::string(pd.impl_info_str()).find("ref") == std::string::npos) candidates.push_back({name, pd});
      } catch (const dnnl::error&) {
        // oneDNN has no kernel for this algorithm and layout here: the candidate is skipped
      }
    };
    const Shape& xs = val(x).shape;
    try_add("direct", dnnl::algorithm::convolution_direct, any_desc(xs), any_desc(y));
    if (candidates.empty()) candidates.push_back({"direct", make_pd(dnnl::algorithm::convolution_direct, any_desc(xs), any_desc(y))});
    if (y[1] % 16 == 0)
      try_add("direct_blocked", dnnl::algorithm::convolution_direct,
              xs[1] % 16 == 0 ? md(to_dims(xs), dt::f32, tag::nChw16c) : any_desc(xs),
              md(to_dims(y), dt::f32, tag::nChw16c));
    const bool winograd_shape = groups == 1 && w.dim(2) == 3 && w.dim(3) == 3 && stride[0] == 1 && stride[1] == 1 &&
                                dilation[0] == 1 && dilation[1] == 1;
    if (winograd_shape && allow_winograd_) try_add("winograd", dnnl::algorithm::convolution_winograd, any_desc(xs), any_desc(y));
    // Layouts flow from the first layer: once some candidate reads the
    // producer's layout as it is, candidates that would need a reorder drop out.
    auto keep_if_any = [&](auto&& fits) {
      if (std::any_of(candidates.begin(), candidates.end(), fits))
        std::erase_if(candidates, [&](auto& c) { return !fits(c); });
    };
    keep_if_any([&](auto& c) { return c.second.src_desc() == val(x).desc; });
    // A fused residual add writes into the shortcut's buffer: same layout, no copy.
    if (!fused.add_values.empty())
      keep_if_any([&](auto& c) { return c.second.dst_desc() == val(fused.add_values[0]).desc; });
    std::vector<KernelCandidate> timed;
    for (auto& [name, cpd] : candidates) {
      std::vector<std::pair<int, md>> descs = {{DNNL_ARG_SRC, cpd.src_desc()}, {DNNL_ARG_WEIGHTS, cpd.weights_desc()},
                                               {DNNL_ARG_DST, cpd.dst_desc()}, {DNNL_ARG_SCRATCHPAD, cpd.scratchpad_desc()}};
      if (own == 3) descs.push_back({DNNL_ARG_BIAS, b_md});
      for (size_t k = 0; k < fused.add_values.size(); ++k) descs.push_back({DNNL_ARG_DST, cpd.dst_desc()});  // sum reads dst
      timed.push_back(scratch_candidate(name, dnnl::convolution_forward(cpd), descs, val(x).desc, cpd.src_desc()));
    }
    // And for a first layer (a few input channels), leanai's own kernel.
    const std::optional<F32SmallConvSpec> small = lower::f32_small_conv_spec(*this, n, x);
    if (small) {
      if (small->pool)  // oneDNN's convolution leaves the pool to a step of its own: charge it
        for (KernelCandidate& k : timed)
          k.run = [conv = k.run, pool = lower::separate_pool_run(*small, xs[0])] {
            conv();
            pool();
          };
      for (KernelCandidate& k : lower::f32_small_conv_candidates(*this, n, x, *small)) timed.push_back(std::move(k));
    }
    const std::string key = "conv2d " + shape_str(xs) + " from " + layout_name(val(x).desc) + " w " +
                            shape_str(w.shape()) + " -> " + shape_str(y) + " s" + std::to_string(stride[0]) + " p" +
                            std::to_string(pad[0]) + post_op_note(n) +
                            (small ? " or " + lower::small_conv_name(*small) : "");
    // LEANAI_CONV_KERNEL names one to take without timing, where it applies.
    int pick = forced_kernel("LEANAI_CONV_KERNEL", timed);
    if (pick < 0) pick = choose_kernel(key, timed, tune_);
    if (pick >= static_cast<int>(candidates.size())) {
      F32SmallConvSpec split = *small, spec = *small;
      split.split_rows = true;
      spec.split_rows = timed[pick].name == lower::small_conv_name(split);
      lower::lower_f32_small_conv(*this, n, x, spec);
      return;
    }
    const auto& pd = candidates[pick].second;
    x = as_layout(x, pd.src_desc(), node_name(n));
    const int out = fused.add_values.empty() ? new_value(y, pd.dst_desc())
                                             : sum_destination(n, fused.add_values[0], pd.dst_desc());
    auto& s = add_primitive(dnnl::convolution_forward(pd), pd.scratchpad_desc(), node_name(n), "conv2d",
                            std::string(pd.impl_info_str()) + ", " + layout_name(pd.src_desc()) + " -> " +
                                layout_name(pd.dst_desc()) + post_op_note(n));
    s.args[DNNL_ARG_WEIGHTS] = packed_weights(w, w_plain, pd.weights_desc());
    if (own == 3) s.args[DNNL_ARG_BIAS] = bias_memory(param(n.inputs[2]));
    s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
    s.reads = {x};
    if (!fused.add_values.empty()) s.reads.push_back(out);
    s.writes = {out};
    node_value_[n.id] = out;
  }

  static std::string post_op_note(const Node& n) {
    std::string note;
    for (const PostOp& p : parse_post_ops(n)) note += (note.empty() ? " + " : ", ") + p.op;
    return note;
  }

  void lower_linear(const Node& n) {
    const size_t own = n.inputs.size() - count_add_post_ops(parse_post_ops(n));
    if (!is_param(n.inputs[1]) || (own == 3 && !is_param(n.inputs[2]))) return lower_kernel(n);
    int x = input_of(n.inputs[0], node_name(n));
    const Tensor& w = param(n.inputs[1]);
    const Shape& xs = val(x).shape;
    const int64_t out_features = w.dim(0);
    // A 4-D source is a flatten this layer absorbs: oneDNN's inner product
    // reads [N, C, H, W] in any layout with weights viewed as [O, C, H, W].
    const bool spatial = absorbed_flattens_.count(n.inputs[0]) > 0;
    if (!spatial && xs.size() != 2) return lower_kernel(n);
    const int64_t in_features = shape_numel(xs) / xs[0];
    check(in_features == w.dim(1), "linear '" + node_name(n) + "': input has " + std::to_string(in_features) +
                                       " features, the weight expects " + std::to_string(w.dim(1)));
    const Shape y = {xs[0], out_features};
    Fused fused = fused_post_ops(n, own);
    dnnl::primitive_attr attr;
    attr.set_post_ops(fused.ops);
    attr = user_scratchpad(attr);
    const bool bias = own == 3;

    // Candidate 1: inner product (weights packed as it likes).
    Shape w_shape = spatial ? Shape{out_features, xs[1], xs[2], xs[3]} : w.shape();
    const md w_plain(to_dims(w_shape), dt::f32, spatial ? tag::oihw : tag::oi);
    const md src_ip = spatial ? val(x).desc : plain_desc(xs);
    auto ip_desc = bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src_ip,
                                                            md(to_dims(w_shape), dt::f32, tag::any),
                                                            md({out_features}, dt::f32, tag::a), plain_desc(y))
                        : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, src_ip,
                                                            md(to_dims(w_shape), dt::f32, tag::any), plain_desc(y));
    auto ip_pd = dnnl::inner_product_forward::primitive_desc(ip_desc, attr, cpu_engine());
    // Candidate 2 (2-D input only): matmul with W read as [in, out].
    dnnl::matmul::primitive_desc mm_pd;
    if (!spatial) {
      const md wt_any({in_features, out_features}, dt::f32, tag::any);
      auto mm_desc = bias ? dnnl::matmul::desc(plain_desc(xs), wt_any, md({1, out_features}, dt::f32, tag::ab), plain_desc(y))
                          : dnnl::matmul::desc(plain_desc(xs), wt_any, plain_desc(y));
      mm_pd = dnnl::matmul::primitive_desc(mm_desc, attr, cpu_engine());
    }
    // Candidate 3 (a few rows, each one stretch of memory in any layout): leanai's packed GEMM.
    const std::vector<int64_t> packed_order = lower::packed_linear_order(*this, n, x);
    const std::string choice =
        spatial && packed_order.empty() ? "inner_product" : choose_linear(n, ip_pd, mm_pd, x, y, bias, packed_order);
    if (choice == lower::kPackedSplit || choice == lower::kPackedOneCore) {
      node_value_[n.id] = lower::lower_packed_linear(*this, n, x, packed_order, choice == lower::kPackedOneCore);
      return;
    }
    x = as_layout(x, choice == "inner_product" ? ip_pd.src_desc() : mm_pd.src_desc(), node_name(n));
    const md dst_desc = choice == "inner_product" ? ip_pd.dst_desc() : mm_pd.dst_desc();
    const int out = fused.add_values.empty() ? new_value(y, dst_desc)
                                             : sum_destination(n, fused.add_values[0], dst_desc);
    PrimitiveStep* s;
    if (choice == "inner_product") {
      s = &add_primitive(dnnl::inner_product_forward(ip_pd), ip_pd.scratchpad_desc(), node_name(n), "linear",
                         std::string("inner_product ") + ip_pd.impl_info_str() + (spatial ? ", reads blocked 4-D" : "") +
                             post_op_note(n));
      s->args[DNNL_ARG_WEIGHTS] = packed_weights(w, w_plain, ip_pd.weights_desc());
      if (bias) s->args[DNNL_ARG_BIAS] = bias_memory(param(n.inputs[2]));
    } else {
      s = &add_primitive(dnnl::matmul(mm_pd), mm_pd.scratchpad_desc(), node_name(n), "linear",
                         std::string("matmul ") + mm_pd.impl_info_str() + post_op_note(n));
      s->args[DNNL_ARG_WEIGHTS] = packed_weights(w, md({in_features, out_features}, dt::f32, tag::ba), mm_pd.weights_desc());
      if (bias) {
        weight_bytes_ += static_cast<int64_t>(param(n.inputs[2]).nbytes());
        s->args[DNNL_ARG_BIAS] = wrap(md({1, out_features}, dt::f32, tag::ab), param(n.inputs[2]));
      }
    }
    s->value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
    s->reads = {x};
    if (!fused.add_values.empty()) s->reads.push_back(out);
    s->writes = {out};
    node_value_[n.id] = out;
  }

  // Times the linear kernels that apply (inner product; matmul for a 2-D
  // source; the packed GEMM for a few rows, where packed_order is not empty,
  // split over the threads or not) on scratch memory of the real shapes;
  // returns the name of the faster.
  // LEANAI_LINEAR_KERNEL names one to take without timing, where it applies.
  std::string choose_linear(const Node& n, const dnnl::inner_product_forward::primitive_desc& ip,
                            const dnnl::matmul::primitive_desc& mm, int x, const Shape& y, bool bias,
                            const std::vector<int64_t>& packed_order) {
    const bool packed = !packed_order.empty();
    const Shape& xs = val(x).shape;
    auto args = [&](auto& pd) {
      std::vector<std::pair<int, md>> a = {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                                           {DNNL_ARG_DST, pd.dst_desc()}, {DNNL_ARG_SCRATCHPAD, pd.scratchpad_desc()}};
      if (bias) a.push_back({DNNL_ARG_BIAS, pd.bias_desc()});
      return a;
    };
    std::vector<KernelCandidate> candidates = {
        scratch_candidate("inner_product", dnnl::inner_product_forward(ip), args(ip), md(), md())};
    if (xs.size() == 2) candidates.push_back(scratch_candidate("matmul", dnnl::matmul(mm), args(mm), md(), md()));
    if (packed)
      for (KernelCandidate& c : lower::packed_linear_candidates(*this, n, x, packed_order))
        candidates.push_back(std::move(c));
    // Either packed form runs any layer the packed kernel takes (one too small
    // to split runs on one core either way), whether or not it is a candidate.
    if (const char* forced = std::getenv("LEANAI_LINEAR_KERNEL"); packed && forced)
      for (const char* form : {lower::kPackedSplit, lower::kPackedOneCore})
        if (std::string(forced) == form) return form;
    if (const int forced = forced_kernel("LEANAI_LINEAR_KERNEL", candidates); forced >= 0)
      return candidates[forced].name;
    // The packed kernel's weights follow x's layout (padded channels included), so its time does too.
    const std::string key = "linear " + shape_str(xs) + " -> " + shape_str(y) + (bias ? " bias" : "") +
                            post_op_note(n) + (packed ? " or packed from " + layout_name(val(x).desc) : "") +
                            (candidates.back().name == lower::kPackedOneCore ? " split or not" : "");
    return candidates[choose_kernel(key, candidates, tune_)].name;
  }

  // A candidate running `prim` on zeroed scratch memory of the given
  // descriptors, after a reorder from `from` when the primitive wants `src` in
  // another layout (so a layout change is charged to the kernel that needs it).
  static KernelCandidate scratch_candidate(const std::string& name, const dnnl::primitive& prim,
                                           const std::vector<std::pair<int, md>>& descs, const md& from, const md& src) {
    auto args = std::make_shared<std::unordered_map<int, dnnl::memory>>();
    for (const auto& [arg, d] : descs) {
      dnnl::memory m(d, cpu_engine());
      std::fill_n(static_cast<char*>(m.get_data_handle()), d.get_size(), 0);
      (*args)[arg] = m;
    }
    std::shared_ptr<dnnl::reorder> to_src;
    dnnl::memory staged;
    if (from != md() && from != src) {
      staged = dnnl::memory(from, cpu_engine());
      std::fill_n(static_cast<char*>(staged.get_data_handle()), from.get_size(), 0);
      to_src = std::make_shared<dnnl::reorder>(staged, (*args)[DNNL_ARG_SRC]);
    }
    return {name, [prim, args, to_src, staged]() mutable {
              if (to_src) to_src->execute(cpu_stream(), staged, args->at(DNNL_ARG_SRC));
              prim.execute(cpu_stream(), *args);
              cpu_stream().wait();
            }};
  }

  void lower_pool(const Node& n) {
    // Max pooling commutes with quantization: u8/s8 pass through it unchanged.
    int x = n.op == "maxpool2d" ? node_value_[n.inputs[0]] : input_of(n.inputs[0], node_name(n));
    const Shape& xs = val(x).shape;
    if (xs.size() != 4) return lower_kernel(n);
    PoolGeometry geo;
    if (n.op == "global_avgpool") {
      geo.kernel = {xs[2], xs[3]};
      geo.stride = {1, 1};
      geo.pad = {0, 0};
    } else {
      geo = PoolGeometry::from_attrs(n.attrs, n.op);
    }
    dnnl::memory::dims pad_r;
    const Shape y = geo.output(xs, pad_r);
    if (lower::lower_maxpool_nhwc(*this, n, x, geo.kernel, geo.stride, geo.pad, y)) return;
    const bool include_pad = attr_int(n, "count_include_pad", 1) != 0;
    const auto alg = n.op == "maxpool2d" ? dnnl::algorithm::pooling_max
                     : include_pad       ? dnnl::algorithm::pooling_avg_include_padding
                                         : dnnl::algorithm::pooling_avg_exclude_padding;
    const md y_any(to_dims(y), val(x).desc.data_type(), tag::any);
    auto desc = dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, val(x).desc, y_any,
                                            dnnl::memory::dims(geo.stride.begin(), geo.stride.end()),
                                            dnnl::memory::dims(geo.kernel.begin(), geo.kernel.end()),
                                            dnnl::memory::dims(geo.pad.begin(), geo.pad.end()), pad_r);
    auto pd = dnnl::pooling_forward::primitive_desc(desc, user_scratchpad(), cpu_engine());
    const int out = new_value(y, pd.dst_desc());
    inst_->values[out].quant = val(x).quant;
    auto& s = add_primitive(dnnl::pooling_forward(pd), pd.scratchpad_desc(), node_name(n), "pooling",
                            std::string(pd.impl_info_str()) + ", " + layout_name(pd.dst_desc()));
    s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
    s.reads = {x};
    s.writes = {out};
    node_value_[n.id] = out;
  }

  void lower_batchnorm(const Node& n) {
    const int x = input_of(n.inputs[0], node_name(n));
    const float eps = static_cast<float>(attr_float(n, "eps", 1e-5));
    auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
                 dnnl::normalization_flags::use_shift;
    auto desc = dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference, val(x).desc, eps, flags);
    auto pd = dnnl::batch_normalization_forward::primitive_desc(desc, user_scratchpad(), cpu_engine());
    const int out = new_value(val(x).shape, pd.dst_desc());
    auto& s = add_primitive(dnnl::batch_normalization_forward(pd), pd.scratchpad_desc(), node_name(n), "batchnorm",
                            pd.impl_info_str());
    const md stat({val(x).shape[1]}, dt::f32, tag::a);
    s.args[DNNL_ARG_SCALE] = wrap(stat, param(n.inputs[1]));
    s.args[DNNL_ARG_SHIFT] = wrap(stat, param(n.inputs[2]));
    s.args[DNNL_ARG_MEAN] = wrap(stat, param(n.inputs[3]));
    s.args[DNNL_ARG_VARIANCE] = wrap(stat, param(n.inputs[4]));
    weight_bytes_ += 4 * static_cast<int64_t>(stat.get_size());
    s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
    s.reads = {x};
    s.writes = {out};
    node_value_[n.id] = out;
  }

  // A small ReLU-like activation on a plain f32 value (as leanai's kernels
  // write: moe, block_gated_linear) runs leanai's loop: oneDNN's eltwise
  // primitive took 1.6-2.4 us per call at batch 1 here, on 256-512 floats.
  // On 32K floats its AVX-512 loop beat ours (built for baseline x86-64) by
  // 5 us to 9, so larger ones stay on oneDNN. Only the exact activations: a
  // sigmoid or gelu whose bits depended on the batch size (which decides the
  // loop) would give one sample two answers.
  void lower_activation(const Node& n) {
    constexpr int64_t kOwnLoopMaxElements = 4096;
    const bool exact = n.op == "relu" || n.op == "leaky_relu" || n.op == "clip";
    const Value& x = val(node_value_[n.inputs[0]]);
    if (exact && x.desc == plain_desc(x.shape) && shape_numel(x.shape) <= kOwnLoopMaxElements) return lower_kernel(n);
    lower_eltwise(n);
  }

  void lower_eltwise(const Node& n) {
    const int x = input_of(n.inputs[0], node_name(n));
    const EltwiseForm e = eltwise_form(n.op, n.attrs);
    auto desc = dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, e.alg, val(x).desc, e.alpha, e.beta);
    auto pd = dnnl::eltwise_forward::primitive_desc(desc, user_scratchpad(), cpu_engine());
    const int out = new_value(val(x).shape, pd.dst_desc());
    auto& s = add_primitive(dnnl::eltwise_forward(pd), pd.scratchpad_desc(), node_name(n), "eltwise:" + n.op,
                            pd.impl_info_str());
    s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
    s.reads = {x};
    s.writes = {out};
    node_value_[n.id] = out;
  }

  bool lower_binary(const Node& n) {
    if (is_param(n.inputs[0]) || is_param(n.inputs[1])) return false;
    int a = input_of(n.inputs[0], node_name(n)), b = input_of(n.inputs[1], node_name(n));
    if (val(a).shape != val(b).shape) return false;  // broadcasting: the kernel handles it
    b = as_layout(b, val(a).desc, node_name(n));
    auto alg = n.op == "add" ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul;
    auto pd = dnnl::binary::primitive_desc(dnnl::binary::desc(alg, val(a).desc, val(b).desc, val(a).desc),
                                           user_scratchpad(), cpu_engine());
    const int out = new_value(val(a).shape, pd.dst_desc());
    auto& s = add_primitive(dnnl::binary(pd), pd.scratchpad_desc(), node_name(n), "binary:" + n.op, pd.impl_info_str());
    s.value_args = {{DNNL_ARG_SRC_0, a}, {DNNL_ARG_SRC_1, b}, {DNNL_ARG_DST, out}};
    s.reads = {a, b};
    s.writes = {out};
    node_value_[n.id] = out;
    return true;
  }

  void lower_reshape(const Node& n) {
    int x = node_value_[n.inputs[0]];
    const Shape y = find_op(n.op).make(n)->prepare({val(x).shape}, false);
    // A flatten read only by linear layers stays 4-D: they absorb it.
    if (n.op == "flatten" && val(x).shape.size() == 4 && y.size() == 2 && all_readers_are_linear(n.id)) {
      node_value_[n.id] = x;
      absorbed_flattens_.insert(n.id);
      return;
    }
    // A flatten of u8/s8 bytes read only by int8 matmuls (NHWC, as the int8
    // convolutions and pools write it): viewed as they lie, each sample one
    // stretch with its features in the layout's order, which the matmuls'
    // weight columns then follow, so no reorder runs.
    std::vector<int64_t> order;
    if (n.op == "flatten" && val(x).shape.size() == 4 && y.size() == 2 && is_int8(val(x).desc) &&
        all_readers_are_int8_matmuls(n.id))
      order = lower::feature_at_position(val(x).desc, val(x).shape);
    const bool in_place = !order.empty() && static_cast<int64_t>(order.size()) == y[1];  // no padding between samples
    if (!in_place) x = as_plain(x, node_name(n));
    node_value_[n.id] = new_value(y, plain_desc(y, val(x).desc.data_type()), x);  // a view of the same bytes
    inst_->values[node_value_[n.id]].quant = val(x).quant;
    if (in_place) inst_->values[node_value_[n.id]].feature_order = std::move(order);
  }

  // Readers lower_quantized_layer lowers as a whole (qlinear, parameter
  // weights, no fused add), taking the node as their source.
  bool all_readers_are_int8_matmuls(int id) const {
    if (id == g_.output()) return false;
    for (const Node& m : g_.nodes())
      for (size_t i = 0; i < m.inputs.size(); ++i)
        if (m.inputs[i] == id && (m.op != "qlinear" || i != 0 || m.inputs.size() != 4 || !is_param(m.inputs[1]) ||
                                  !is_param(m.inputs[2]) || !is_param(m.inputs[3])))
          return false;
    return true;
  }

  bool all_readers_are_linear(int id) const {
    if (id == g_.output()) return false;
    for (const Node& m : g_.nodes())
      for (size_t i = 0; i < m.inputs.size(); ++i)
        if (m.inputs[i] == id && (m.op != "linear" || i != 0 || !is_param(m.inputs[1]) || !f32_weight(m) ||
                                  computes_in_bf16(m)))
          return false;
    return true;
  }

  void lower_kernel(const Node& n) {
    auto step = std::make_unique<KernelStep>();
    step->kernel = find_op(n.op).make(n);
    std::vector<Shape> shapes;
    for (int i : n.inputs) {
      if (is_param(i)) {
        step->input_values.push_back(-1);
        step->params.push_back(&param(i));
        shapes.push_back(param(i).shape());
        continue;
      }
      int v = input_of(i, node_name(n));
      // Kernels read plain tensors in the arena (the caller's input is copied in).
      v = val(inst_->root(v)).external ? copy_value(v, node_name(n)) : as_plain(v, node_name(n));
      step->input_values.push_back(v);
      step->params.push_back(nullptr);
      step->reads.push_back(v);
      shapes.push_back(val(v).shape);
    }
    const Shape y = step->kernel->prepare(shapes, false);
    check(step->kernel->out_dtype() == DType::f32, "plan: op '" + n.op + "' has a non-f32 output");
    // The weights the step reads: the packed copies the kernel makes, and the
    // parameters it still reads in place.
    std::set<const void*> packed_sources;
    step->kernel->freeze_params(Inputs(step->params.begin(), step->params.end()),
                                [&](const Tensor& source, const std::string& kind, const std::function<Tensor()>& make) {
                                  Tensor t = weights_.derived(source, kind, make);
                                  packed_sources.insert(source.raw());
                                  weight_bytes_ += static_cast<int64_t>(t.nbytes());
                                  return t;
                                });
    for (const Tensor* p : step->params)
      if (p && !packed_sources.count(p->raw())) weight_bytes_ += static_cast<int64_t>(p->nbytes());
    const int out = new_value(y, plain_desc(y));
    step->writes = {out};
    step->info = {node_name(n), "kernel:" + n.op, "leanai kernel, plain layout"};
    inst_->steps.push_back(std::move(step));
    node_value_[n.id] = out;
  }

  const Graph& g_;
  bool tune_;
  bool allow_winograd_;
  PackedWeights& weights_;
  NodeUses uses_;
  std::vector<int> readers_left_;  // readers of each node not yet lowered
  std::vector<int> node_value_;
  std::set<int> absorbed_flattens_;
  std::map<int, Tensor> f32_weights_;  // param node -> f32 copy of a 16-bit weight  // flatten nodes whose linear readers take the 4-D value
  int64_t weight_bytes_ = 0;
  std::unique_ptr<Instance> inst_;
};

}  // namespace

std::unique_ptr<Instance> lower_graph(const Graph& graph, int64_t batch, bool tune, bool allow_winograd,
                                      PackedWeights& weights) {
  return Lowering(graph, batch, tune, allow_winograd, weights).run();
}

}  // namespace leanai::runtime
