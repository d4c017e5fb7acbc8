// qlinear / qconv2d on oneDNN int8 (see lower_quantized.h).
#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/input_quant.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

dt int8_type(DType t) { return t == DType::u8 ? dt::u8 : dt::s8; }

// f32 -> u8/s8 into `want` (a layout the reader chose): x / s + z, saturated.
// Readers wanting the same params and layout share one copy.
int quantize(LoweringContext& c, int v, const md& want, const QuantParams& p, const std::string& name) {
  for (int q : val(c, v).quantized)
    if (val(c, q).desc == want && val(c, q).quant.scale == p.scale && val(c, q).quant.zero_point == p.zero_point &&
        val(c, q).quant.dtype == p.dtype)
      return q;
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
  val(c, v).quantized.push_back(out);
  return out;
}

// Whether input i of static q-op m is the operand of a residual add that may
// be read in u8/s8: the add, then at most a ReLU, which commutes with the
// rescaling from the operand's units (int8_layer_attr).
bool reads_int8_residual(const Node& m, size_t i) {
  const std::vector<PostOp> ops = parse_post_ops(m);
  const size_t own = m.inputs.size() - static_cast<size_t>(count_add_post_ops(ops));
  return own == 4 && i == own && m.inputs.size() == 5 && ops[0].op == "add" &&
         (ops.size() == 1 || (ops.size() == 2 && ops[1].op == "relu"));
}

// The params a q-op's output may be stored with (an int8 region): its readers
// are all q-ops taking it as their source with the same static params (or as
// a residual operand, read in any params).
std::optional<QuantParams> region_params(const Graph& g, int node) {
  std::vector<QuantParams> found;
  const bool ok = all_readers(g, node, [&](const Node& m, size_t i) {
    if (m.op != "qlinear" && m.op != "qconv2d") return false;
    const InputQuant iq = parse_input_quant(m);
    if (iq.dynamic) return false;
    if (i != 0) return reads_int8_residual(m, i);  // takes the operand in whatever params it has
    found.push_back(iq.params);
    return true;
  });
  if (!ok || found.empty()) return std::nullopt;
  for (const QuantParams& p : found)
    if (p.scale != found[0].scale || p.zero_point != found[0].zero_point || p.dtype != found[0].dtype) return std::nullopt;
  return found[0];
}

// Per batch: the source's own params (dynamic mode), the source quantized
// into plain u8/s8, and the runtime arguments that depend on the params.
class DynamicQuantizeStep : public OneToOneStep {
 public:
  QuantParams params;  // dtype fixed; scale and zero point per run
  std::vector<float> w_scale, bias;
  bool matmul = false;
  Tensor zero_point = Tensor::empty({1}, DType::i32);
  Tensor scales, scaled_bias;  // matmul: runtime output scales and b / scale; conv: scales holds s alone

  void run() override {
    const float* x = static_cast<const float*>(src());
    const int64_t n = shape_numel(src_shape());
    const QuantParams p = dynamic_params(x, n, params.dtype);
    quantize_to(x, n, p, dst());
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
};

// Output scales and post-ops of an int8 layer: the batch's scale and the bias
// as binary post-ops for a dynamic convolution (no runtime output scales in
// oneDNN 2.6), the node's own post-ops (a fused add as an in-place sum, or,
// when the output is requantized, as a binary post-op whose index goes to
// residual_post_op, unless `residual_sum`: an int8 operand of the output's
// own type summed in place), then the requantization to out_q.
dnnl::primitive_attr int8_layer_attr(const InputQuant& iq, bool conv, const std::vector<float>& w_scale,
                                     const std::vector<PostOp>& ops, const std::vector<md>& add_descs,
                                     const std::optional<QuantParams>& out_q, const std::optional<QuantParams>& residual_q,
                                     bool residual_sum, bool src_zero_point, int& residual_post_op) {
  const int64_t out_ch = static_cast<int64_t>(w_scale.size());
  dnnl::primitive_attr attr;
  dnnl::post_ops post;
  if (iq.dynamic && conv) {
    post.append_binary(dnnl::algorithm::binary_mul, md({1, 1, 1, 1}, dt::f32, tag::nchw));
    post.append_binary(dnnl::algorithm::binary_add, md({1, out_ch, 1, 1}, dt::f32, tag::nchw));
    attr.set_output_scales(1 << 1, w_scale);
  } else if (iq.dynamic) {
    attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
  } else {
    // An int8 residual operand q (real value s_r * q, zero point 0) is added
    // as it lies: the output scales give the layer's result in the operand's
    // units (divided by s_r), and the final linear post-op multiplies by s_r.
    // One linear post-op only: oneDNN 2.6's jit kernels run a second
    // eltwise_linear with the first one's alpha and beta.
    std::vector<float> scales(w_scale);
    for (float& s : scales) s *= iq.params.scale / (residual_q ? residual_q->scale : 1.0f);
    attr.set_output_scales(1 << 1, scales);
  }
  residual_post_op = -1;
  const dnnl::post_ops user = to_dnnl_post_ops(ops, add_descs, (out_q || residual_q) && !residual_sum ? -1 : 0);
  for (int i = 0; i < user.len(); ++i) {
    if (user.kind(i) == dnnl::primitive::kind::sum) {
      // An int8 operand is summed as the bytes it is, in its own units (the output scales' units).
      post.append_sum(1.0f, residual_sum ? add_descs[0].data_type() : dt::undef);
    } else if (user.kind(i) == dnnl::primitive::kind::binary) {
      dnnl::algorithm alg;
      md operand;
      user.get_params_binary(i, alg, operand);
      residual_post_op = post.len();
      post.append_binary(alg, operand);
    } else {
      float scale, alpha, beta;
      dnnl::algorithm alg;
      user.get_params_eltwise(i, scale, alg, alpha, beta);
      post.append_eltwise(scale, alg, alpha, beta);
    }
  }
  const float units = residual_q ? residual_q->scale : 1.0f;
  if (out_q)
    post.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, units / out_q->scale, static_cast<float>(out_q->zero_point));
  else if (residual_q)
    post.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, units, 0.0f);
  attr.set_post_ops(post);
  if (src_zero_point) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  return attr;
}

}  // namespace

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
  const Tensor w7 = seven_bit ? c.weights().derived(wq, "int8 weights halved to 7 bits", [&] {
    Tensor h = Tensor::empty(wq.shape(), DType::i8);
    for (int64_t i = 0; i < wq.numel(); ++i) h.data<int8_t>()[i] = static_cast<int8_t>(std::nearbyint(wq.data<int8_t>()[i] / 2.0f));
    return h;
  }) : wq;
  // A source viewed in its layout's feature order (an absorbed flatten): the
  // weights' columns in that order.
  const std::vector<int64_t> order = val(c, x).feature_order;
  const Tensor w = order.empty() ? w7 : c.weights().derived(w7, "columns in order " + feature_order_key(order), [&] {
    const std::vector<int8_t> columns = columns_in_order(w7.data<int8_t>(), w7.dim(0), w7.dim(1), order);
    Tensor t = Tensor::empty(w7.shape(), DType::i8);
    std::copy(columns.begin(), columns.end(), t.data<int8_t>());
    return t;
  });
  std::vector<float> w_scale(ws.data<float>(), ws.data<float>() + out_ch);
  if (seven_bit)
    for (float& s : w_scale) s *= 2.0f;

  // A residual operand in u8/s8 (an int8 region wrote it) is read as it lies
  // where oneDNN has a kernel for that; others are added in f32.
  std::optional<QuantParams> residual_q;
  std::vector<int> adds;
  if (!iq.dynamic && reads_int8_residual(n, own) && is_int8(val(c, c.node_value(n.inputs[own])).desc) &&
      val(c, c.node_value(n.inputs[own])).quant.zero_point == 0) {
    adds = {c.node_value(n.inputs[own])};
    residual_q = val(c, adds[0]).quant;
  } else {
    adds = add_operands(c, n, own);
  }
  // Requantized output for an int8 region. A fused add is then a binary
  // post-op reading the f32 operand (an in-place sum would read it from the
  // u8 destination), if oneDNN has a kernel for that; else the output stays f32.
  std::optional<QuantParams> out_q = region_params(c.graph(), n.id);
  if (conv && adds.empty() && lower_small_int8_conv(c, n, out_q)) return true;
  std::vector<md> add_descs;
  for (int v : adds) add_descs.push_back(val(c, v).desc);
  const dt src_t = int8_type(iq.dtype);
  const bool dynamic_conv = iq.dynamic && conv;
  // A source zero point makes oneDNN add a compensation pass and rules out
  // some kernels; s8 and post-ReLU u8 sources have none, so ask only when needed.
  const bool src_zero_point = (iq.dynamic && iq.dtype == DType::u8) || iq.params.zero_point != 0;
  int residual_post_op = -1;  // the binary add's index among the post-ops
  bool residual_sum = false;
  auto make_pd = [&] {
    const dnnl::primitive_attr attr = int8_layer_attr(iq, conv, w_scale, ops, add_descs, out_q, residual_q, residual_sum,
                                                      src_zero_point, residual_post_op);
    return layer_pd(geo, src_t, dt::s8, dynamic_conv ? md() : bias_desc(geo), out_q ? int8_type(out_q->dtype) : dt::f32,
                    attr);
  };
  // Tries make_pd; keeps it only when oneDNN has a kernel (not the reference).
  auto try_pd = [&] {
    LayerPd p;
    try {
      p = make_pd();
    } catch (const dnnl::error&) {
      return LayerPd();  // no kernel for these post-ops
    }
    return p.impl.find("ref") == std::string::npos ? p : LayerPd();
  };
  LayerPd pd;
  if (residual_q) {
    // An operand of the output's own type is summed in place (the destination
    // starts as the operand): brgconv kernels take a sum, while a binary
    // post-op leaves only oneDNN's older jit kernels, about 1.4x slower on
    // ResNetS's 3x3 convolutions with AMX.
    residual_sum = out_q && int8_type(out_q->dtype) == add_descs[0].data_type();
    if (residual_sum) pd = try_pd();
    if (!pd.prim) {
      residual_sum = false;
      pd = try_pd();  // a binary post-op reading the int8 operand
    }
    if (!pd.prim) {  // no kernel reads this int8 operand: added in f32 below
      residual_q.reset();
      adds = add_operands(c, n, own);
      add_descs = {val(c, adds[0]).desc};
    }
  }
  if (!pd.prim && !adds.empty() && out_q) {
    pd = try_pd();
    if (!pd.prim) out_q.reset();  // no kernel takes this add as a binary post-op: f32 output, in-place sum
  }
  if (!pd.prim) pd = make_pd();

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
  if (residual_q)
    detail += std::string(", residual read in ") + type_name(val(c, adds[0]).desc.data_type()) + (residual_sum ? " (sum)" : "");
  const bool binary_add = residual_post_op >= 0;
  const int out = binary_add ? new_value(c, geo.y, pd.dst) : layer_destination(c, n, adds, pd.dst, geo.y);
  auto& s = add_primitive(c, pd.prim, pd.scratch, name_of(n), n.op, detail + post_op_note(n));
  s.args[DNNL_ARG_WEIGHTS] = packed(c, w, plain_weights(geo, dt::s8), pd.weights);
  if (src_zero_point) s.args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = wrap(md({1}, dt::s32, tag::a), zero_point);
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
  finish_layer(c, n, s, x, out, !adds.empty() && !binary_add);
  if (binary_add) {
    s.value_args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(residual_post_op) | DNNL_ARG_SRC_1, adds[0]});
    s.reads.push_back(adds[0]);
  }
  if (out_q) val(c, c.node_value(n.id)).quant = *out_q;
  return true;
}

}  // namespace leanai::runtime
