// leanai Graph -> ONNX ModelProto. One pass over the nodes the output depends
// on, in the Graph's (topological) order; each node appends the ONNX nodes
// that compute it and records the name of its value. Parameters become
// initializers only when a node reads them, so unused ones are not written.
#include "leanai/io/onnx_export.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>

#include <onnx/onnx_pb.h>

#include "leanai/core/error.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/io/atomic_file.h"
#include "leanai/kernels/pool_geometry.h"
#include "leanai/kernels/post_ops.h"

namespace leanai {
namespace {

using TP = onnx::TensorProto;

int onnx_type(DType t) {
  switch (t) {
    case DType::f32:
    case DType::bf16:
    case DType::f16:
      return TP::FLOAT;  // 16-bit floats are widened at export (see the header)
    case DType::i8: return TP::INT8;
    case DType::u8: return TP::UINT8;
    case DType::i32: return TP::INT32;
    case DType::i64: return TP::INT64;
  }
  return TP::UNDEFINED;
}

void set_attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void set_attr(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void set_attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

using AttrFn = std::function<void(onnx::NodeProto&)>;

class Exporter {
 public:
  Exporter(const Graph& g, const ExportOptions& o) : g_(g), o_(o), names_(g.nodes().size()), ranks_(g.nodes().size(), 0) {}

  OnnxExport run();

 private:
  // --- names and initializers
  std::string unique(std::string base) {
    for (char& c : base)
      if (c == ' ') c = '_';
    std::string name = base;
    for (int k = 1; used_.count(name); ++k) name = base + "." + std::to_string(k);
    used_.insert(name);
    return name;
  }
  std::string add_init(const std::string& hint, const Tensor& t) {
    const Tensor v = t.dtype() == DType::f16 || t.dtype() == DType::bf16 ? t.to(DType::f32) : t.clone();
    TP* init = graph_->add_initializer();
    init->set_name(unique(hint));
    init->set_data_type(onnx_type(v.dtype()));
    for (int64_t d : v.shape()) init->add_dims(d);
    init->set_raw_data(std::string(static_cast<const char*>(v.raw()), v.nbytes()));
    weight_bytes_ += static_cast<int64_t>(v.nbytes());
    return init->name();
  }
  std::string add_scalar(const std::string& hint, float v) { return add_init(hint, Tensor::full({}, v)); }
  std::string add_typed(const std::string& hint, const Shape& shape, DType dtype, const std::function<void(Tensor&)>& fill) {
    Tensor t = Tensor::zeros(shape, dtype);
    fill(t);
    return add_init(hint, t);
  }
  // The initializer holding a parameter node's tensor, written once.
  std::string param(int id) {
    const Node& p = g_.node(id);
    if (names_[id].empty()) names_[id] = add_init(p.name, g_.params().at(p.name).value);
    return names_[id];
  }
  // The value of node `id` as an ONNX name (parameters become initializers here).
  std::string value(int id) { return g_.node(id).op == "param" ? param(id) : names_.at(id); }
  const Tensor& param_tensor(int id, const std::string& where, const std::string& role) const {
    const Node& p = g_.node(id);
    check(p.op == "param", where + ": the " + role + " must be a parameter to export it");
    return g_.params().at(p.name).value;
  }

  // Appends an ONNX node; returns its (first) output's name.
  std::string emit(const std::string& type, const std::vector<std::string>& inputs, const std::string& hint,
                   const AttrFn& attrs = {}, int outputs = 1) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(type);
    n->set_name(unique("node:" + hint));
    for (const auto& i : inputs) n->add_input(i);
    for (int k = 0; k < outputs; ++k) n->add_output(unique(hint + (k ? ":" + std::to_string(k) : "")));
    if (attrs) attrs(*n);
    op_counts_[type]++;
    return n->output(0);
  }

  // --- ops
  void export_node(const Node& n);
  std::string activation(const std::string& op, const json& attrs, const std::string& x, const std::string& hint);
  std::string post_ops(const Node& n, std::string y, size_t base_inputs, const std::string& hint);
  std::string linear(const std::string& x, const std::string& w, const std::string& b, int rank, const std::string& hint);
  std::string conv(const Node& n, const std::string& x, const std::string& w, const std::string& b, const std::string& hint);
  std::string q_input(const Node& n, const std::string& hint, float* static_scale);
  const std::array<std::string, 3>& dynamic_quantize(const std::string& x, const std::string& hint);
  std::string dynamic_qlinear(const Node& n, const std::string& hint);
  std::string q_weight(const Node& n, const std::string& where);
  std::string q_bias(const Node& n, float x_scale);
  std::string w4_weight(const Node& n, const std::string& where);

  std::string where(const Node& n) const {
    return "node " + std::to_string(n.id) + (n.name.empty() ? "" : " '" + n.name + "'") + " (" + n.op + ")";
  }
  std::string hint(const Node& n) const { return n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name; }

  const Graph& g_;
  const ExportOptions& o_;
  onnx::GraphProto* graph_ = nullptr;
  std::vector<std::string> names_;
  std::vector<int> ranks_;  // of each value (batch axis included), for Gemm vs MatMul
  std::set<std::string> used_;
  std::map<std::string, std::string> qdq_cache_;  // (value, quantization) -> dequantized name
  std::map<std::string, std::array<std::string, 3>> dynq_cache_;  // value -> DynamicQuantizeLinear outputs
  std::map<std::string, int> op_counts_;
  int64_t weight_bytes_ = 0;
};

std::string Exporter::activation(const std::string& op, const json& attrs, const std::string& x, const std::string& h) {
  Node a;
  a.op = op;
  a.attrs = attrs.is_object() ? attrs : json::object();
  if (op == "relu") return emit("Relu", {x}, h);
  if (op == "sigmoid") return emit("Sigmoid", {x}, h);
  if (op == "tanh") return emit("Tanh", {x}, h);
  if (op == "leaky_relu") {
    const float alpha = static_cast<float>(attr_float(a, "alpha", 0.01));
    return emit("LeakyRelu", {x}, h, [&](onnx::NodeProto& n) { set_attr(n, "alpha", alpha); });
  }
  if (op == "clip") {
    const double inf = std::numeric_limits<double>::infinity();
    const double lo = attr_float(a, "min", -inf), hi = attr_float(a, "max", inf);
    const std::string lo_name = std::isinf(lo) ? "" : add_scalar(h + ".min", static_cast<float>(lo));
    const std::string hi_name = std::isinf(hi) ? "" : add_scalar(h + ".max", static_cast<float>(hi));
    return emit("Clip", {x, lo_name, hi_name}, h);
  }
  if (op == "gelu") {  // PyTorch's Erf form, which leanai's importer turns back into gelu
    const std::string u = emit("Div", {x, add_scalar(h + ".sqrt2", std::sqrt(2.0f))}, h + "/div");
    const std::string e = emit("Erf", {u}, h + "/erf");
    const std::string p = emit("Add", {e, add_scalar(h + ".one", 1.0f)}, h + "/add");
    const std::string m = emit("Mul", {x, p}, h + "/mul");
    return emit("Mul", {m, add_scalar(h + ".half", 0.5f)}, h);
  }
  throw Error("activation '" + op + "' has no ONNX export");
}

// The node's post-ops after its base result y: each "add" reads the next extra input.
std::string Exporter::post_ops(const Node& n, std::string y, size_t base_inputs, const std::string& h) {
  size_t next_add = base_inputs;
  int k = 0;
  for (const PostOp& p : parse_post_ops(n)) {
    const std::string step = h + "/" + p.op + std::to_string(k++);
    y = p.op == "add" ? emit("Add", {y, value(n.inputs.at(next_add++))}, step) : activation(p.op, p.attrs, y, step);
  }
  return y;
}

// x [batch, in] . W[out, in]^T + b as Gemm; inputs with more axes take MatMul + Add.
std::string Exporter::linear(const std::string& x, const std::string& w, const std::string& b, int rank,
                             const std::string& h) {
  if (rank <= 2) {
    std::vector<std::string> in = {x, w};
    if (!b.empty()) in.push_back(b);
    return emit("Gemm", in, h, [](onnx::NodeProto& n) { set_attr(n, "transB", int64_t{1}); });
  }
  const std::string wt = emit("Transpose", {w}, h + "/wt", [](onnx::NodeProto& n) { set_attr(n, "perm", std::vector<int64_t>{1, 0}); });
  const std::string y = emit("MatMul", {x, wt}, b.empty() ? h : h + "/matmul");
  return b.empty() ? y : emit("Add", {y, b}, h);
}

std::string Exporter::conv(const Node& n, const std::string& x, const std::string& w, const std::string& b,
                           const std::string& h) {
  const std::vector<int64_t> stride = attr_ints(n, "stride", {1, 1}), pad = attr_ints(n, "padding", {0, 0}),
                             dilation = attr_ints(n, "dilation", {1, 1});
  const int64_t groups = attr_int(n, "groups", 1);
  check(stride.size() == 2 && pad.size() == 2 && dilation.size() == 2, where(n) + ": stride, padding and dilation need 2 values");
  const Shape& ws = param_tensor(n.inputs[1], where(n), "weight").shape();
  check(ws.size() == 4, where(n) + ": the weight must be [OC, C/groups, KH, KW], got " + shape_str(ws));
  std::vector<std::string> in = {x, w};
  if (!b.empty()) in.push_back(b);
  return emit("Conv", in, h, [&](onnx::NodeProto& c) {
    set_attr(c, "kernel_shape", std::vector<int64_t>{ws[2], ws[3]});
    set_attr(c, "strides", stride);
    set_attr(c, "pads", std::vector<int64_t>{pad[0], pad[1], pad[0], pad[1]});
    set_attr(c, "dilations", dilation);
    set_attr(c, "group", groups);
  });
}

// DynamicQuantizeLinear of x (its u8 value, scale and zero point), once per value.
const std::array<std::string, 3>& Exporter::dynamic_quantize(const std::string& x, const std::string& h) {
  auto it = dynq_cache_.find(x);
  if (it != dynq_cache_.end()) return it->second;
  emit("DynamicQuantizeLinear", {x}, h + "/dynq", {}, 3);
  const onnx::NodeProto& q = graph_->node(graph_->node_size() - 1);
  return dynq_cache_[x] = {q.output(0), q.output(1), q.output(2)};
}

bool is_dynamic_u8(const Node& n) {
  if (!n.attrs.contains("input") || !n.attrs["input"].is_object()) return false;
  const json& in = n.attrs["input"];
  const json d = in.value("dynamic", json(false));
  const bool dynamic = (d.is_boolean() && d.get<bool>()) || (d.is_number_integer() && d.get<int64_t>() != 0);
  return dynamic && in.value("dtype", json("")) == json("u8");
}

// qlinear with a dynamic u8 input on [batch, in]: the pattern ONNX Runtime's
// quantize_dynamic writes, which it fuses into DynamicQuantizeMatMul (int8
// compute); the math is the contract's: acc * (s * w_scale[o]) + b.
std::string Exporter::dynamic_qlinear(const Node& n, const std::string& h) {
  const std::string w = where(n);
  const Tensor& wq = param_tensor(n.inputs[1], w, "weight");
  const Tensor& ws = param_tensor(n.inputs[2], w, "weight scale");
  check(wq.dtype() == DType::i8 && wq.rank() == 2, w + ": the weight must be stored as I8 [out, in], got " +
                                                       std::string(dtype_name(wq.dtype())) + " " + shape_str(wq.shape()));
  check(ws.dtype() == DType::f32 && ws.shape() == Shape{wq.dim(0)}, w + ": the weight scale must be f32 [" + std::to_string(wq.dim(0)) + "]");
  const int64_t out = wq.dim(0), k = wq.dim(1);
  const std::string wt = add_typed(g_.node(n.inputs[1]).name + ".transposed", {k, out}, DType::i8, [&](Tensor& t) {
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < k; ++c) t.data<int8_t>()[c * out + o] = wq.data<int8_t>()[o * k + c];
  });
  const std::string wz = add_typed(g_.node(n.inputs[1]).name + ".zero_point", {}, DType::i8, [](Tensor&) {});
  const auto& q = dynamic_quantize(value(n.inputs[0]), h);
  const std::string acc = emit("MatMulInteger", {q[0], wt, q[2], wz}, h + "/matmul_integer");
  const std::string accf = emit("Cast", {acc}, h + "/cast", [](onnx::NodeProto& c) { set_attr(c, "to", int64_t{TP::FLOAT}); });
  const std::string scale = emit("Mul", {q[1], value(n.inputs[2])}, h + "/scale");
  const std::string y = emit("Mul", {accf, scale}, h + "/scaled");
  return emit("Add", {y, value(n.inputs[3])}, h + "/bias");
}

// The q-op's input as the float op reads it: Q -> DQ (static), DynamicQuantizeLinear
// -> DQ (dynamic u8 qconv2d), or x itself (dynamic s8). *static_scale gets s, or 0 when dynamic.
std::string Exporter::q_input(const Node& n, const std::string& h, float* static_scale) {
  const std::string w = where(n);
  check(n.attrs.contains("input") && n.attrs["input"].is_object(), w + ": needs the 'input' quantization attribute");
  Node in;
  in.op = n.op + " input";
  in.attrs = n.attrs["input"];
  const std::string dtype = attr_string(in, "dtype", "");
  check(dtype == "u8" || dtype == "s8", w + ": input dtype must be 'u8' or 's8', got '" + dtype + "'");
  const std::string x = value(n.inputs[0]);
  *static_scale = 0.0f;
  if (attr_int(in, "dynamic", 0) != 0) {
    if (dtype == "s8") return x;  // weight-only int8 (see the header)
    const std::string key = x + "|dynamic";
    if (!qdq_cache_.count(key)) {
      const auto& q = dynamic_quantize(x, h);
      qdq_cache_[key] = emit("DequantizeLinear", {q[0], q[1], q[2]}, h + "/dq");
    }
    return qdq_cache_[key];
  }
  const float s = static_cast<float>(attr_float(in, "scale", 0.0));
  const int64_t z = attr_int(in, "zero_point", 0);
  const bool u8 = dtype == "u8";
  check(std::isfinite(s) && s > 0.0f, w + ": input scale must be a positive number");
  check(u8 ? z >= 0 && z <= 255 : z >= -128 && z <= 127, w + ": input zero_point " + std::to_string(z) + " is out of range for " + dtype);
  *static_scale = s;
  char key_buf[96];
  std::snprintf(key_buf, sizeof key_buf, "|%s|%.9g|%lld", dtype.c_str(), s, static_cast<long long>(z));
  const std::string key = x + key_buf;
  if (!qdq_cache_.count(key)) {
    const std::string scale = add_scalar(h + ".input_scale", s);
    const std::string zp = add_typed(h + ".input_zero_point", {}, u8 ? DType::u8 : DType::i8, [&](Tensor& t) {
      if (u8) t.data<uint8_t>()[0] = static_cast<uint8_t>(z);
      else t.data<int8_t>()[0] = static_cast<int8_t>(z);
    });
    const std::string xq = emit("QuantizeLinear", {x, scale, zp}, h + "/q");
    qdq_cache_[key] = emit("DequantizeLinear", {xq, scale, zp}, h + "/dq");
  }
  return qdq_cache_[key];
}

// int8 Wq with per-output-channel scales (axis 0) through DequantizeLinear.
std::string Exporter::q_weight(const Node& n, const std::string& w) {
  const Tensor& wq = param_tensor(n.inputs[1], w, "weight");
  const Tensor& ws = param_tensor(n.inputs[2], w, "weight scale");
  check(wq.dtype() == DType::i8, w + ": the weight must be stored as I8, got " + std::string(dtype_name(wq.dtype())));
  check(wq.rank() >= 2 && ws.dtype() == DType::f32 && ws.shape() == Shape{wq.dim(0)},
        w + ": the weight scale must be f32 [" + std::to_string(wq.dim(0)) + "], got " + shape_str(ws.shape()));
  const std::string zp = add_typed(g_.node(n.inputs[1]).name + ".zero_point", {wq.dim(0)}, DType::i8, [](Tensor&) {});
  return emit("DequantizeLinear", {value(n.inputs[1]), value(n.inputs[2]), zp}, hint(n) + "/weight_dq",
              [](onnx::NodeProto& d) { set_attr(d, "axis", int64_t{0}); });
}

// Static: the bias as int32 at scale s * w_scale[o] (ONNX Runtime's QDQ fusion
// wants it so); dynamic: the f32 bias as it is.
std::string Exporter::q_bias(const Node& n, float x_scale) {
  if (x_scale == 0.0f) return value(n.inputs[3]);
  const Tensor& ws = param_tensor(n.inputs[2], where(n), "weight scale");
  const Tensor b = param_tensor(n.inputs[3], where(n), "bias").to(DType::f32);
  const int64_t out = ws.numel();
  check(b.shape() == Shape{out}, where(n) + ": the bias must be f32 [" + std::to_string(out) + "], got " + shape_str(b.shape()));
  Tensor scale = Tensor::empty({out});
  for (int64_t o = 0; o < out; ++o) {
    const float s = x_scale * ws.data<float>()[o];
    scale.data<float>()[o] = s > 0.0f ? s : 1.0f;
  }
  const std::string& bname = g_.node(n.inputs[3]).name;
  const std::string bq = add_typed(bname + ".quantized", {out}, DType::i32, [&](Tensor& t) {
    for (int64_t o = 0; o < out; ++o) {
      const double q = std::nearbyint(static_cast<double>(b.data<float>()[o]) / scale.data<float>()[o]);
      t.data<int32_t>()[o] = static_cast<int32_t>(std::clamp(q, -2147483647.0, 2147483647.0));
    }
  });
  const std::string zp = add_typed(bname + ".zero_point", {out}, DType::i32, [](Tensor&) {});
  return emit("DequantizeLinear", {bq, add_init(bname + ".scale", scale), zp}, hint(n) + "/bias_dq",
              [](onnx::NodeProto& d) { set_attr(d, "axis", int64_t{0}); });
}

// qlinear_w4's packed nibbles times their block scales, as an f32 [out, K] initializer.
std::string Exporter::w4_weight(const Node& n, const std::string& w) {
  const Tensor& wp = param_tensor(n.inputs[1], w, "packed weight");
  const Tensor& ws = param_tensor(n.inputs[2], w, "weight scale");
  const int64_t block = attr_int(n, "block", 32), k = attr_int(n, "in", 0);
  check(block == 32 || block == 64, w + ": block must be 32 or 64");
  check(wp.dtype() == DType::u8 && wp.rank() == 2 && k > 0 && k % block == 0 && wp.dim(1) * 2 == k,
        w + ": the packed weight must be U8 [out, in/2] with 'in' a multiple of block, got " + shape_str(wp.shape()));
  const int64_t out = wp.dim(0);
  check(ws.dtype() == DType::f32 && ws.shape() == Shape{out, k / block},
        w + ": the weight scale must be f32 [" + std::to_string(out) + ", " + std::to_string(k / block) + "]");
  Tensor f = Tensor::empty({out, k});
  const uint8_t* p = wp.data<uint8_t>();
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < k; ++c) {
      const uint8_t byte = p[o * (k / 2) + c / 2];
      const int nib = c % 2 == 0 ? byte & 0xf : byte >> 4;  // low nibble = even column
      f.data<float>()[o * k + c] = static_cast<float>(nib >= 8 ? nib - 16 : nib) * ws.data<float>()[o * (k / block) + c / block];
    }
  return add_init(g_.node(n.inputs[1]).name + ".dequantized", f);
}

void Exporter::export_node(const Node& n) {
  const std::string h = hint(n), w = where(n);
  auto in = [&](size_t k) { return value(n.inputs.at(k)); };
  auto rank_of = [&](size_t k) { return ranks_[n.inputs.at(k)]; };
  int rank = n.inputs.empty() ? 0 : rank_of(0);
  std::string y;
  const size_t adds = n.op == "conv2d" || n.op == "linear" || n.op.rfind("qlinear", 0) == 0 || n.op == "qconv2d"
                          ? static_cast<size_t>(count_add_post_ops(parse_post_ops(n)))
                          : 0;
  const size_t base = n.inputs.size() - adds;

  if (n.op == "linear" || n.op == "conv2d") {
    check(base == 2 || base == 3, w + ": " + std::to_string(n.inputs.size()) + " inputs do not fit its post-ops");
    const std::string b = base == 3 ? in(2) : "";
    const bool is_conv = n.op == "conv2d";
    y = is_conv ? conv(n, in(0), in(1), b, adds || n.attrs.contains("post_ops") ? h + "/conv" : h)
                : linear(in(0), in(1), b, rank, n.attrs.contains("post_ops") ? h + "/gemm" : h);
    y = post_ops(n, y, base, h);
    if (is_conv) rank = 4;
  } else if (n.op == "qlinear" || n.op == "qconv2d") {
    check(base == 4, w + ": expects x, Wq, w_scale, b and one input per 'add' post-op");
    if (n.op == "qlinear" && rank <= 2 && is_dynamic_u8(n)) {
      names_[n.id] = post_ops(n, dynamic_qlinear(n, h), base, h);
      ranks_[n.id] = rank;
      return;
    }
    float s = 0.0f;
    const std::string x = q_input(n, h, &s);
    const std::string wq = q_weight(n, w), b = q_bias(n, s);
    y = n.op == "qconv2d" ? conv(n, x, wq, b, h + "/conv") : linear(x, wq, b, rank, h + "/gemm");
    y = post_ops(n, y, base, h);
    if (n.op == "qconv2d") rank = 4;
  } else if (n.op == "qlinear_w4") {
    check(base == 4, w + ": expects x, Wp, w_scale and b");
    y = post_ops(n, linear(in(0), w4_weight(n, w), in(3), rank, h + "/gemm"), base, h);
  } else if (n.op == "conv2d_fused") {
    const bool bn = n.attrs.contains("batchnorm") && !n.attrs["batchnorm"].is_null();
    const size_t conv_inputs = n.inputs.size() - (bn ? 4 : 0);
    check(conv_inputs == 2 || conv_inputs == 3, w + ": wrong number of inputs");
    y = conv(n, in(0), in(1), conv_inputs == 3 ? in(2) : "", h + "/conv");
    if (bn) {
      Node b;
      b.op = "conv2d_fused batchnorm";
      b.attrs = n.attrs["batchnorm"];
      const float eps = static_cast<float>(attr_float(b, "eps", 1e-5)), momentum = static_cast<float>(attr_float(b, "momentum", 0.1));
      y = emit("BatchNormalization", {y, in(conv_inputs), in(conv_inputs + 1), in(conv_inputs + 2), in(conv_inputs + 3)},
               h + "/bn", [&](onnx::NodeProto& p) {
                 set_attr(p, "epsilon", eps);
                 set_attr(p, "momentum", 1.0f - momentum);
               });
    }
    if (attr_string(n, "activation", "none") == "relu") y = emit("Relu", {y}, h + "/relu");
    if (n.attrs.contains("pool") && !n.attrs["pool"].is_null()) {
      const PoolGeometry p = PoolGeometry::from_attrs(n.attrs["pool"], w + " pool");
      y = emit("MaxPool", {y}, h + "/pool", [&](onnx::NodeProto& m) {
        set_attr(m, "kernel_shape", p.kernel);
        set_attr(m, "strides", p.stride);
        set_attr(m, "pads", std::vector<int64_t>{p.pad[0], p.pad[1], p.pad[0], p.pad[1]});
      });
    }
    rank = 4;
  } else if (n.op == "batchnorm") {
    const float eps = static_cast<float>(attr_float(n, "eps", 1e-5)), momentum = static_cast<float>(attr_float(n, "momentum", 0.1));
    y = emit("BatchNormalization", {in(0), in(1), in(2), in(3), in(4)}, h, [&](onnx::NodeProto& p) {
      set_attr(p, "epsilon", eps);
      set_attr(p, "momentum", 1.0f - momentum);  // ONNX weighs the old running value
    });
  } else if (is_fusable_activation(n.op)) {
    y = activation(n.op, n.attrs, in(0), h);
  } else if (n.op == "maxpool2d" || n.op == "avgpool2d") {
    const PoolGeometry p = PoolGeometry::from_attrs(n.attrs, w);
    const bool is_max = n.op == "maxpool2d";
    const int64_t include_pad = attr_int(n, "count_include_pad", 1) != 0;
    y = emit(is_max ? "MaxPool" : "AveragePool", {in(0)}, h, [&](onnx::NodeProto& m) {
      set_attr(m, "kernel_shape", p.kernel);
      set_attr(m, "strides", p.stride);
      set_attr(m, "pads", std::vector<int64_t>{p.pad[0], p.pad[1], p.pad[0], p.pad[1]});
      if (!is_max) set_attr(m, "count_include_pad", include_pad);
    });
  } else if (n.op == "global_avgpool") {
    y = emit("GlobalAveragePool", {in(0)}, h);
  } else if (n.op == "flatten") {
    const int64_t axis = attr_int(n, "axis", 1);
    y = emit("Flatten", {in(0)}, h, [&](onnx::NodeProto& f) { set_attr(f, "axis", axis); });
    rank = 2;
  } else if (n.op == "reshape") {
    const std::vector<int64_t> shape = attr_ints(n, "shape", {});
    const std::string target = add_typed(h + ".shape", {static_cast<int64_t>(shape.size())}, DType::i64, [&](Tensor& t) {
      std::copy(shape.begin(), shape.end(), t.data<int64_t>());
    });
    y = emit("Reshape", {in(0), target}, h);
    rank = static_cast<int>(shape.size());
  } else if (n.op == "transpose") {
    const std::vector<int64_t> perm = attr_ints(n, "perm", {});
    y = emit("Transpose", {in(0)}, h, [&](onnx::NodeProto& t) { set_attr(t, "perm", perm); });
  } else if (n.op == "concat") {
    std::vector<std::string> parts;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      parts.push_back(in(k));
      rank = std::max(rank, rank_of(k));
    }
    const int64_t axis = attr_int(n, "axis", 1);
    y = emit("Concat", parts, h, [&](onnx::NodeProto& c) { set_attr(c, "axis", axis); });
  } else if (n.op == "softmax" || n.op == "log_softmax") {
    const int64_t axis = attr_int(n, "axis", -1);
    y = emit(n.op == "softmax" ? "Softmax" : "LogSoftmax", {in(0)}, h, [&](onnx::NodeProto& s) { set_attr(s, "axis", axis); });
  } else if (n.op == "add" || n.op == "sub" || n.op == "mul" || n.op == "div" || n.op == "matmul") {
    static const std::map<std::string, std::string> types = {
        {"add", "Add"}, {"sub", "Sub"}, {"mul", "Mul"}, {"div", "Div"}, {"matmul", "MatMul"}};
    y = emit(types.at(n.op), {in(0), in(1)}, h);
    rank = std::max(rank, rank_of(1));
  } else if (n.op == "dropout") {
    y = in(0);  // the identity at inference
  } else {
    throw Error(w + ": leanai cannot export '" + n.op +
                "' to ONNX (exportable: linear, conv2d, conv2d_fused, batchnorm, activations, pooling, flatten, reshape, "
                "transpose, concat, softmax, add/sub/mul/div, matmul, dropout, qlinear, qconv2d, qlinear_w4)" +
                (n.op.find("gate") != std::string::npos || n.op == "moe"
                     ? "; compact the sparse layers first (leanai writes compacted models for inference)"
                     : ""));
  }
  names_[n.id] = y;
  ranks_[n.id] = rank;
}

OnnxExport Exporter::run() {
  check(o_.opset >= 13 && o_.opset <= 17, "ONNX export writes opsets 13 to 17, not " + std::to_string(o_.opset));
  check(!o_.output_name.empty(), "ONNX export: the output name must not be empty");
  const int out = g_.output();
  check(out >= 0, "ONNX export: the graph has no output");
  onnx::ModelProto model;
  model.set_ir_version(o_.opset == 13 ? 7 : 8);
  model.set_producer_name("leanai");
  model.set_producer_version(LEANAI_VERSION_STRING);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(o_.opset);
  for (const auto& [k, v] : o_.metadata) {
    auto* p = model.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  graph_ = model.mutable_graph();
  graph_->set_name("leanai");
  used_.insert(o_.output_name);

  // Only what the output depends on.
  std::vector<bool> live(g_.nodes().size(), false);
  live[out] = true;
  for (int id = out; id >= 0; --id)
    if (live[id])
      for (int i : g_.node(id).inputs) live[i] = true;

  for (const Node& n : g_.nodes()) {
    if (!live[n.id] || n.op == "param") continue;
    if (n.op == "input") {
      const Shape sample = g_.input_sample_shape(n.id);
      auto* vi = graph_->add_input();
      vi->set_name(unique(n.name));
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(onnx_type(g_.input_dtype(n.id)));
      auto* batch = tt->mutable_shape()->add_dim();
      if (o_.dynamic_batch) batch->set_dim_param("N");
      else batch->set_dim_value(1);
      for (int64_t d : sample) tt->mutable_shape()->add_dim()->set_dim_value(d);
      names_[n.id] = vi->name();
      ranks_[n.id] = static_cast<int>(sample.size()) + 1;
      continue;
    }
    try {
      export_node(n);
    } catch (const Error& e) {
      const std::string msg = e.what();
      throw Error(msg.rfind("node ", 0) == 0 ? msg : where(n) + ": " + msg);
    }
  }
  check(g_.node(out).op != "param", "ONNX export: the graph output is a parameter, not a computed value");

  // The output value gets the requested name: rename its producer's output, or add an Identity.
  const std::string result = names_[out];
  onnx::NodeProto* producer = nullptr;
  for (auto& node : *graph_->mutable_node())
    for (auto& o : *node.mutable_output())
      if (o == result) producer = &node;
  bool is_graph_input = false;
  for (const auto& i : graph_->input()) is_graph_input |= i.name() == result;
  if (producer && !is_graph_input) {
    for (auto& o : *producer->mutable_output())
      if (o == result) o = o_.output_name;
    for (auto& node : *graph_->mutable_node())
      for (auto& i : *node.mutable_input())
        if (i == result) i = o_.output_name;
  } else {
    emit("Identity", {result}, "output");
    graph_->mutable_node(graph_->node_size() - 1)->set_output(0, o_.output_name);
  }
  auto* vo = graph_->add_output();
  vo->set_name(o_.output_name);
  auto* ot = vo->mutable_type()->mutable_tensor_type();
  ot->set_elem_type(TP::FLOAT);
  // ONNX checkers want the output's shape: the kernels' own inference where
  // they can run (not for ops without a kernel in this build), else the rank.
  Shape shape(std::max(ranks_[out], 1), -1);
  try {
    shape = infer_shapes(g_, 1).at(out);
  } catch (const Error&) {
  }
  for (size_t k = 0; k < shape.size(); ++k) {
    auto* d = ot->mutable_shape()->add_dim();
    if (k == 0 && o_.dynamic_batch) d->set_dim_param("N");
    else if (shape[k] > 0) d->set_dim_value(shape[k]);
  }

  OnnxExport result_export;
  check(model.ByteSizeLong() < (size_t{1} << 31), "ONNX export: the model is larger than 2 GiB, which ONNX cannot hold in one file");
  check(model.SerializeToString(&result_export.bytes), "ONNX export: serializing the model failed");
  result_export.op_counts = op_counts_;
  result_export.weight_bytes = weight_bytes_;
  return result_export;
}

}  // namespace

OnnxExport build_onnx_export(const Graph& graph, const ExportOptions& options) { return Exporter(graph, options).run(); }

void export_onnx(const Graph& graph, const std::string& path, const ExportOptions& options) {
  const OnnxExport e = build_onnx_export(graph, options);
  write_file_atomic(path, [&](std::FILE* f) { write_bytes(f, e.bytes.data(), e.bytes.size(), path); });
}

}  // namespace leanai
