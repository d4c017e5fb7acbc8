#include "leanai/runtime/lower_common.h"

#include <algorithm>
#include <functional>
#include <string_view>

#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"

namespace leanai::runtime {
namespace lower {

std::string name_of(const Node& n) { return n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name; }
const Tensor& param(LoweringContext& c, int node) { return c.graph().params().at(c.graph().node(node).name).value; }
bool is_param(LoweringContext& c, int node) { return c.graph().node(node).op == "param"; }

int new_value(LoweringContext& c, const Shape& shape, const md& desc, int root) {
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

int layer_destination(LoweringContext& c, const Node& n, const std::vector<int>& adds, const md& dst, const Shape& y) {
  return adds.empty() ? new_value(c, y, dst) : c.sum_destination(n, adds[0], dst);
}

void finish_layer(LoweringContext& c, const Node& n, PrimitiveStep& s, int x, int out, bool fused_add) {
  s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
  s.reads = {x};
  if (fused_add) s.reads.push_back(out);
  s.writes = {out};
  c.set_node_value(n.id, out);
}

std::vector<int64_t> feature_at_position(const md& desc, const Shape& shape) {
  if (desc == plain_desc(shape)) {
    std::vector<int64_t> order(static_cast<size_t>(shape_numel(shape) / shape[0]));
    for (size_t f = 0; f < order.size(); ++f) order[f] = static_cast<int64_t>(f) + 1;
    return order;
  }
  const int64_t rows = shape[0], features = shape_numel(shape) / rows;
  if (rows * features >= (int64_t{1} << 24)) return {};  // numbers exact in a float
  // The same layout holding floats (strides and blocks count elements), so
  // the numbers survive the reorder whatever the value's own element type.
  md as_f32 = desc;
  as_f32.data.data_type = dnnl_f32;
  dnnl::memory plain(plain_desc(shape), cpu_engine()), laid(as_f32, cpu_engine());
  float* numbered = static_cast<float*>(plain.get_data_handle());
  for (int64_t i = 0; i < rows * features; ++i) numbered[i] = static_cast<float>(i + 1);
  float* out = static_cast<float*>(laid.get_data_handle());
  const int64_t total = static_cast<int64_t>(as_f32.get_size() / sizeof(float));
  std::fill_n(out, total, 0.0f);
  try {
    dnnl::reorder(plain, laid).execute(cpu_stream(), plain, laid);
    cpu_stream().wait();
  } catch (const dnnl::error&) {
    return {};  // a layout oneDNN cannot reorder into: not one the packed kernel reads either
  }
  if (total % rows) return {};
  const int64_t stretch = total / rows;
  std::vector<int64_t> order(static_cast<size_t>(stretch));
  int64_t seen = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < stretch; ++p) {
      const int64_t v = static_cast<int64_t>(out[r * stretch + p]);
      const int64_t feature = v == 0 ? 0 : v - r * features;  // 1-based within sample r
      if (feature < 0 || feature > features) return {};       // another sample's feature
      if (r == 0) order[p] = feature, seen += feature > 0;
      else if (feature != order[p]) return {};
    }
  if (seen != features) return {};
  return order;
}

std::string feature_order_key(const std::vector<int64_t>& order) {
  return std::to_string(std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(order.data()), order.size() * sizeof(int64_t))));
}

}  // namespace lower

using namespace lower;

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

}  // namespace leanai::runtime
