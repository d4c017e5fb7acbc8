#include "leanai/runtime/lower_quantized.h"

#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/weight_storage.h"
#include "leanai/quant/input_quant.h"

namespace leanai::runtime {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

std::string name_of(const Node& n) { return n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name; }
const Tensor& param(LoweringContext& c, int node) { return c.graph().params().at(c.graph().node(node).name).value; }
bool is_param(LoweringContext& c, int node) { return c.graph().node(node).op == "param"; }

int new_value(LoweringContext& c, const Shape& shape, const md& desc, int root = -1) {
  Value v;
  v.shape = shape;
  v.desc = desc;
  v.root = root;
  c.instance().values.push_back(std::move(v));
  return static_cast<int>(c.instance().values.size()) - 1;
}
Value& val(LoweringContext& c, int v) { return c.instance().values[v]; }

PrimitiveStep& add_primitive(LoweringContext& c, dnnl::primitive p, const md& scratch, const std::string& name,
                             const std::string& kind, const std::string& detail) {
  auto step = std::make_unique<PrimitiveStep>();
  step->primitive = std::move(p);
  step->scratchpad_desc = scratch;
  step->info = {name, kind, detail};
  auto& ref = *step;
  c.instance().steps.push_back(std::move(step));
  return ref;
}

const char* type_name(dt t) { return t == dt::u8 ? "u8" : t == dt::s8 ? "s8" : t == dt::bf16 ? "bf16" : "f32"; }
dt int8_type(DType t) { return t == DType::u8 ? dt::u8 : dt::s8; }

// f32 -> u8/s8 into `want` (a layout the reader chose): x / s + z, saturated.
int quantize(LoweringContext& c, int v, const md& want, const QuantParams& p, const std::string& name) {
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {1.0f / p.scale});
  if (p.zero_point != 0) attr.set_zero_points(DNNL_ARG_DST, 0, {p.zero_point});
  auto pd = dnnl::reorder::primitive_desc(cpu_engine(), val(c, v).desc, cpu_engine(), want, user_scratchpad(attr));
  const int out = new_value(c, val(c, v).shape, want);
  val(c, out).quant = p;
  auto& s = add_primitive(c, dnnl::reorder(pd), pd.scratchpad_desc(), name + " (quantize)", "quantize",
                          std::string("f32 -> ") + type_name(want.data_type()) + ", " + pd.impl_info_str());
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
  s.reads = {v};
  s.writes = {out};
  return out;
}

// Whether every reader of `node`, looking through max pooling, flatten and
// reshape (which commute with rounding to a narrower type), is one `fits`
// accepts as reading it as input `i`; never past the graph output.
bool all_readers(const Graph& g, int node, const std::function<bool(const Node&, size_t)>& fits) {
  if (node == g.output()) return false;
  bool any = false;
  for (const Node& m : g.nodes())
    for (size_t i = 0; i < m.inputs.size(); ++i) {
      if (m.inputs[i] != node) continue;
      const bool through = m.op == "maxpool2d" || m.op == "flatten" || m.op == "reshape";
      if (through ? !all_readers(g, m.id, fits) : !fits(m, i)) return false;
      any = true;
    }
  return any;
}

// The params a q-op's output may be stored with (an int8 region): its readers
// are all q-ops taking it as their source with the same static params.
std::optional<QuantParams> region_params(const Graph& g, int node) {
  std::vector<QuantParams> found;
  const bool ok = all_readers(g, node, [&](const Node& m, size_t i) {
    if ((m.op != "qlinear" && m.op != "qconv2d") || i != 0) return false;
    const InputQuant iq = parse_input_quant(m);
    if (iq.dynamic) return false;
    found.push_back(iq.params);
    return true;
  });
  if (!ok || found.empty()) return std::nullopt;
  for (const QuantParams& p : found)
    if (p.scale != found[0].scale || p.zero_point != found[0].zero_point || p.dtype != found[0].dtype) return std::nullopt;
  return found[0];
}

// Whether a bf16 layer's output may be stored as bf16 (a bf16 region): its
// readers all round their source to bf16 anyway.
bool bf16_region(const Graph& g, int node) {
  return all_readers(g, node, [&](const Node& m, size_t i) {
    return (m.op == "linear" || m.op == "conv2d") && i == 0 && computes_in_bf16(m) && g.node(m.inputs[1]).op == "param";
  });
}

// Per batch: the source's own params (dynamic mode), the source quantized
// into plain u8/s8, and the runtime arguments that depend on the params.
class DynamicQuantizeStep : public Step {
 public:
  QuantParams params;  // dtype fixed; scale and zero point per run
  std::vector<float> w_scale, bias;
  bool matmul = false;
  Tensor zero_point = Tensor::empty({1}, DType::i32);
  Tensor scales, scaled_bias;  // matmul: runtime output scales and b / scale; conv: scales holds s alone

  void bind(Instance& inst) override {
    src_ = inst.values[reads.at(0)].mem;
    dst_ = inst.values[writes.at(0)].mem;
    n_ = shape_numel(inst.values[reads.at(0)].shape);
  }
  void run() override {
    const float* x = static_cast<const float*>(src_.get_data_handle());
    const QuantParams p = dynamic_params(x, n_, params.dtype);
    quantize_to(x, n_, p, dst_.get_data_handle());
    zero_point.data<int32_t>()[0] = p.zero_point;
    float* s = scales.data<float>();
    if (!matmul) {
      s[0] = p.scale;
      return;
    }
    float* b = scaled_bias.data<float>();
    for (size_t o = 0; o < w_scale.size(); ++o) {
      s[o] = p.scale * w_scale[o];
      b[o] = bias[o] / s[o];
    }
  }

 private:
  dnnl::memory src_, dst_;
  int64_t n_ = 0;
};

// Shapes and oneDNN geometry of a linear / conv2d / q-op node.
struct Geometry {
  bool conv = false;
  Shape x, w, y;
  int64_t groups = 1;
  dnnl::memory::dims strides, dil, pad_l, pad_r, wdims;
};

Geometry geometry(const Node& n, const Shape& x, const Shape& w) {
  Geometry geo;
  geo.conv = n.op == "conv2d" || n.op == "qconv2d";
  geo.x = x;
  geo.w = w;
  if (!geo.conv) {
    geo.y = {x[0], w[0]};
    return geo;
  }
  // The output shape exactly as the float kernel computes it.
  Node base = n;
  base.op = "conv2d";
  base.attrs.erase("post_ops");
  base.attrs.erase("compute");
  base.attrs.erase("input");
  base.inputs.resize(2);
  geo.y = find_op("conv2d").make(base)->prepare({x, w}, false);
  geo.groups = attr_int(n, "groups", 1);
  const std::vector<int64_t> stride = attr_ints(n, "stride", {1, 1}), pad = attr_ints(n, "padding", {0, 0}),
                             dilation = attr_ints(n, "dilation", {1, 1});
  geo.strides = {stride[0], stride[1]};
  geo.pad_l = {pad[0], pad[1]};
  geo.pad_r = geo.dil = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const int64_t extent = dilation[i] * (w[2 + i] - 1) + 1;
    geo.pad_r[i] = (geo.y[2 + i] - 1) * stride[i] + extent - x[2 + i] - pad[i];
    geo.dil[i] = dilation[i] - 1;
  }
  geo.wdims = geo.groups == 1 ? to_dims(w) : dnnl::memory::dims{geo.groups, w[0] / geo.groups, w[1], w[2], w[3]};
  return geo;
}

// The weights as stored ([out, in] or [out, in/g, kh, kw]) in element type t.
md plain_weights(const Geometry& geo, dt t) {
  if (!geo.conv) return md({geo.w[1], geo.w[0]}, t, tag::ba);  // read as [in, out] by matmul
  return md(geo.wdims, t, geo.groups == 1 ? tag::oihw : tag::goihw);
}

struct LayerPd {
  dnnl::primitive prim;
  md src, weights, dst, scratch;
  std::string impl;
};

// A oneDNN convolution (conv) or matmul (linear) with the given element types;
// layouts `any` where oneDNN may choose. `bias` empty: none.
LayerPd layer_pd(const Geometry& geo, dt src_t, dt w_t, const md& bias, dt dst_t, const dnnl::primitive_attr& attr) {
  LayerPd r;
  if (geo.conv) {
    const md src(to_dims(geo.x), src_t, tag::any), w(geo.wdims, w_t, tag::any), dst(to_dims(geo.y), dst_t, tag::any);
    auto desc = bias != md() ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                               src, w, bias, dst, geo.strides, geo.dil, geo.pad_l, geo.pad_r)
                             : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                               src, w, dst, geo.strides, geo.dil, geo.pad_l, geo.pad_r);
    auto pd = dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(attr), cpu_engine());
    r = {dnnl::convolution_forward(pd), pd.src_desc(), pd.weights_desc(), pd.dst_desc(), pd.scratchpad_desc(), pd.impl_info_str()};
    return r;
  }
  const md src(to_dims(geo.x), src_t, tag::ab), w({geo.w[1], geo.w[0]}, w_t, tag::any), dst(to_dims(geo.y), dst_t, tag::ab);
  auto desc = bias != md() ? dnnl::matmul::desc(src, w, bias, dst) : dnnl::matmul::desc(src, w, dst);
  auto pd = dnnl::matmul::primitive_desc(desc, user_scratchpad(attr), cpu_engine());
  r = {dnnl::matmul(pd), pd.src_desc(), pd.weights_desc(), pd.dst_desc(), pd.scratchpad_desc(), std::string("matmul ") + pd.impl_info_str()};
  return r;
}

md bias_desc(const Geometry& geo) {
  const int64_t out = geo.w[0];
  return geo.conv ? md({out}, dt::f32, tag::a) : md({1, out}, dt::f32, tag::ab);
}

std::string post_op_note(const Node& n) {
  std::string note;
  for (const PostOp& p : parse_post_ops(n)) note += (note.empty() ? " + " : ", ") + p.op;
  return note;
}

dnnl::memory packed(LoweringContext& c, const Tensor& w, const md& plain, const md& want) {
  dnnl::memory m = c.weights().get(w, plain, want);
  c.instance().packed_weights.push_back(m.get_data_handle());
  return m;
}

// The operands of the node's fused adds, as f32 values.
std::vector<int> add_operands(LoweringContext& c, const Node& n, size_t own) {
  std::vector<int> adds;
  for (size_t i = own; i < n.inputs.size(); ++i) adds.push_back(dequantized(c, c.node_value(n.inputs[i]), name_of(n)));
  check(adds.size() <= 1, n.op + " '" + n.name + "': the runtime fuses at most one residual add");
  return adds;
}

// Binds the layer's destination (an in-place sum when it has a fused add) and its source.
void finish_layer(LoweringContext& c, const Node& n, PrimitiveStep& s, int x, const std::vector<int>& adds, const LayerPd& pd,
                  const Shape& y) {
  const int out = adds.empty() ? new_value(c, y, pd.dst) : c.sum_destination(n, adds[0], pd.dst);
  s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
  s.reads = {x};
  if (!adds.empty()) s.reads.push_back(out);
  s.writes = {out};
  c.set_node_value(n.id, out);
}

}  // namespace

bool is_int8(const md& desc) { return desc.data_type() == dt::u8 || desc.data_type() == dt::s8; }

bool cpu_has_vnni() {
  // The effective ISA honours DNNL_MAX_CPU_ISA, so tests can run the no-VNNI path here.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto has = [&](dnnl::cpu_isa want) { return (isa & static_cast<unsigned>(want)) == static_cast<unsigned>(want); };
  return has(dnnl::cpu_isa::avx512_core_vnni) || has(dnnl::cpu_isa::avx2_vnni);
}

bool cpu_has_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto want = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & want) == want;
}

int dequantized(LoweringContext& c, int v, const std::string& name) {
  const dt type = val(c, v).desc.data_type();
  if (type == dt::f32) return v;
  if (val(c, v).dequantized >= 0) return val(c, v).dequantized;
  const QuantParams p = val(c, v).quant;
  dnnl::primitive_attr attr;  // bf16 converts as it is
  if (is_int8(val(c, v).desc)) {
    attr.set_output_scales(0, {p.scale});
    if (p.zero_point != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {p.zero_point});
  }
  const Shape shape = val(c, v).shape;
  const md want = plain_desc(shape);
  auto pd = dnnl::reorder::primitive_desc(cpu_engine(), val(c, v).desc, cpu_engine(), want, user_scratchpad(attr));
  const int out = new_value(c, shape, want);
  auto& s = add_primitive(c, dnnl::reorder(pd), pd.scratchpad_desc(), name + " (dequantize)", "dequantize",
                          std::string(type_name(type)) + " -> f32, " + pd.impl_info_str());
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
  s.reads = {v};
  s.writes = {out};
  val(c, v).dequantized = out;
  return out;
}

bool lower_quantized_layer(LoweringContext& c, const Node& n) {
  const std::vector<PostOp> ops = parse_post_ops(n);
  const size_t own = n.inputs.size() - count_add_post_ops(ops);
  if (own != 4 || !is_param(c, n.inputs[1]) || !is_param(c, n.inputs[2]) || !is_param(c, n.inputs[3])) return false;
  const bool conv = n.op == "qconv2d";
  int x = c.node_value(n.inputs[0]);
  const Shape xs = val(c, x).shape;
  if (!conv && xs.size() != 2) return false;
  const InputQuant iq = parse_input_quant(n);
  const Tensor& wq = param(c, n.inputs[1]);
  const Tensor& ws = param(c, n.inputs[2]);
  const Tensor& b = param(c, n.inputs[3]);
  const Geometry geo = geometry(n, xs, wq.shape());
  const int64_t out_ch = wq.dim(0);

  // No VNNI: 7-bit weights, so vpmaddubsw's 16-bit pair sums cannot saturate.
  // oneDNN's s8-source convolutions halve the weights themselves; its s8 GEMM
  // (matmul) shifts the source to u8 and does not, so it needs them too.
  const bool seven_bit = !cpu_has_vnni() && (iq.dtype == DType::u8 || !conv);
  const Tensor w = seven_bit ? c.weights().derived(wq, "int8 weights halved to 7 bits", [&] {
    Tensor h = Tensor::empty(wq.shape(), DType::i8);
    for (int64_t i = 0; i < wq.numel(); ++i) h.data<int8_t>()[i] = static_cast<int8_t>(std::nearbyint(wq.data<int8_t>()[i] / 2.0f));
    return h;
  }) : wq;
  std::vector<float> w_scale(ws.data<float>(), ws.data<float>() + out_ch);
  if (seven_bit)
    for (float& s : w_scale) s *= 2.0f;

  const std::vector<int> adds = add_operands(c, n, own);
  // Requantized output for an int8 region (not with a fused add: sum reads the f32 operand).
  const std::optional<QuantParams> out_q = adds.empty() ? region_params(c.graph(), n.id) : std::nullopt;
  std::vector<md> add_descs;
  for (int v : adds) add_descs.push_back(val(c, v).desc);

  dnnl::primitive_attr attr;
  dnnl::post_ops post;
  const bool dynamic_conv = iq.dynamic && conv;
  if (dynamic_conv) {
    // No runtime output scales for convolutions in oneDNN 2.6: the batch's scale
    // and then the bias arrive as binary post-ops instead.
    post.append_binary(dnnl::algorithm::binary_mul, md({1, 1, 1, 1}, dt::f32, tag::nchw));
    post.append_binary(dnnl::algorithm::binary_add, md({1, out_ch, 1, 1}, dt::f32, tag::nchw));
    attr.set_output_scales(1 << 1, w_scale);
  } else if (iq.dynamic) {
    attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
  } else {
    std::vector<float> scales(w_scale);
    for (float& s : scales) s *= iq.params.scale;
    attr.set_output_scales(1 << 1, scales);
  }
  const dnnl::post_ops user = to_dnnl_post_ops(ops, add_descs, 0);
  for (int i = 0; i < user.len(); ++i) {
    if (user.kind(i) == dnnl::primitive::kind::sum) {
      post.append_sum(1.0f);
    } else {
      float scale, alpha, beta;
      dnnl::algorithm alg;
      user.get_params_eltwise(i, scale, alg, alpha, beta);
      post.append_eltwise(scale, alg, alpha, beta);
    }
  }
  if (out_q) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f / out_q->scale, static_cast<float>(out_q->zero_point));
  attr.set_post_ops(post);
  attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});

  const dt src_t = int8_type(iq.dtype);
  const LayerPd pd = layer_pd(geo, src_t, dt::s8, dynamic_conv ? md() : bias_desc(geo), out_q ? int8_type(out_q->dtype) : dt::f32, attr);

  // The source, quantized where a region begins.
  DynamicQuantizeStep* dq = nullptr;
  Tensor zero_point;
  if (iq.dynamic) {
    auto dyn = std::make_unique<DynamicQuantizeStep>();
    dq = dyn.get();
    dyn->params.dtype = iq.dtype;
    dyn->w_scale = w_scale;
    dyn->bias.assign(b.data<float>(), b.data<float>() + out_ch);
    dyn->matmul = !conv;
    dyn->scales = Tensor::empty({conv ? 1 : out_ch});
    dyn->scaled_bias = Tensor::empty({out_ch});
    const int xf = c.as_layout(dequantized(c, x, name_of(n)), plain_desc(xs), name_of(n));
    const int xq = new_value(c, xs, plain_desc(xs, src_t));
    dyn->reads = {xf};
    dyn->writes = {xq};
    dyn->info = {name_of(n) + " (quantize)", "quantize", std::string("dynamic f32 -> ") + type_name(src_t) + ", batch min/max"};
    zero_point = dyn->zero_point;
    c.instance().steps.push_back(std::move(dyn));
    x = c.as_layout(xq, pd.src, name_of(n));
  } else {
    const Value& in = val(c, x);
    const bool same = is_int8(in.desc) && in.quant.scale == iq.params.scale && in.quant.zero_point == iq.params.zero_point &&
                      in.quant.dtype == iq.params.dtype;
    if (same) {
      x = c.as_layout(x, pd.src, name_of(n));
    } else {
      x = quantize(c, dequantized(c, x, name_of(n)), pd.src, iq.params, name_of(n));
    }
    zero_point = c.weights().derived(wq, "zero point " + std::to_string(iq.params.zero_point), [&] {
      Tensor z = Tensor::empty({1}, DType::i32);
      z.data<int32_t>()[0] = iq.params.zero_point;
      return z;
    });
  }

  std::string detail = pd.impl + ", " + type_name(src_t) + " -> " + (out_q ? std::string(type_name(int8_type(out_q->dtype))) + " (requantized)" : "f32");
  if (iq.dynamic) detail += ", dynamic";
  if (seven_bit) detail += ", 7-bit weights (no VNNI)";
  auto& s = add_primitive(c, pd.prim, pd.scratch, name_of(n), n.op, detail + post_op_note(n));
  s.args[DNNL_ARG_WEIGHTS] = packed(c, w, plain_weights(geo, dt::s8), pd.weights);
  s.args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = wrap(md({1}, dt::s32, tag::a), zero_point);
  if (dynamic_conv) {
    s.args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = wrap(md({1, 1, 1, 1}, dt::f32, tag::nchw), dq->scales);
    s.args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] = wrap(md({1, out_ch, 1, 1}, dt::f32, tag::nchw), b);
  } else if (iq.dynamic) {
    s.args[DNNL_ARG_ATTR_OUTPUT_SCALES] = wrap(md({out_ch}, dt::f32, tag::a), dq->scales);
    s.args[DNNL_ARG_BIAS] = wrap(bias_desc(geo), dq->scaled_bias);
  } else {
    // oneDNN adds the bias before the output scale: pass b / scale.
    const Tensor scaled = c.weights().derived(b, "bias / " + std::to_string(iq.params.scale) + (seven_bit ? " 7-bit" : ""), [&] {
      Tensor t = Tensor::empty({out_ch});
      for (int64_t o = 0; o < out_ch; ++o) t.data<float>()[o] = b.data<float>()[o] / (iq.params.scale * w_scale[o]);
      return t;
    });
    s.args[DNNL_ARG_BIAS] = wrap(bias_desc(geo), scaled);
  }
  c.count_weight_bytes(static_cast<int64_t>(b.nbytes() + ws.nbytes()));
  finish_layer(c, n, s, x, adds, pd, geo.y);
  if (out_q) val(c, c.node_value(n.id)).quant = *out_q;
  return true;
}

bool lower_bf16_layer(LoweringContext& c, const Node& n) {
  if (!cpu_has_bf16()) return false;
  const std::vector<PostOp> ops = parse_post_ops(n);
  const size_t own = n.inputs.size() - count_add_post_ops(ops);
  if (!is_param(c, n.inputs[1]) || (own == 3 && !is_param(c, n.inputs[2]))) return false;
  int x = c.node_value(n.inputs[0]);  // bf16 inside a bf16 region
  if (val(c, x).desc.data_type() != dt::bf16) x = dequantized(c, x, name_of(n));
  const Shape xs = val(c, x).shape;
  if (n.op == "linear" && xs.size() != 2) return false;
  const Tensor& w0 = param(c, n.inputs[1]);
  const Tensor w = w0.dtype() == DType::bf16 ? w0 : c.weights().derived(w0, "bf16", [&] { return w0.to(DType::bf16); });
  const Geometry geo = geometry(n, xs, w.shape());
  const std::vector<int> adds = add_operands(c, n, own);
  std::vector<md> add_descs;
  for (int v : adds) add_descs.push_back(val(c, v).desc);
  dnnl::primitive_attr attr;
  attr.set_post_ops(to_dnnl_post_ops(ops, add_descs, 0));
  // bf16 out when every reader rounds to bf16 anyway (not with a fused add: sum reads the f32 operand).
  const bool bf16_out = adds.empty() && bf16_region(c.graph(), n.id);
  const LayerPd pd = layer_pd(geo, dt::bf16, dt::bf16, own == 3 ? bias_desc(geo) : md(), bf16_out ? dt::bf16 : dt::f32, attr);
  x = c.as_layout(x, pd.src, name_of(n));  // where x is f32, the rounding to bf16 happens in this reorder
  auto& s = add_primitive(c, pd.prim, pd.scratch, name_of(n), n.op,
                          pd.impl + (bf16_out ? ", bf16 -> bf16" : ", bf16 -> f32") + post_op_note(n));
  s.args[DNNL_ARG_WEIGHTS] = packed(c, w, plain_weights(geo, dt::bf16), pd.weights);
  if (own == 3) {
    const Tensor& b = param(c, n.inputs[2]);
    s.args[DNNL_ARG_BIAS] = wrap(bias_desc(geo), b);
    c.count_weight_bytes(static_cast<int64_t>(b.nbytes()));
  }
  finish_layer(c, n, s, x, adds, pd, geo.y);
  return true;
}

}  // namespace leanai::runtime
