// ONNX -> leanai Graph. Three steps:
//   1. convert: walk the ONNX nodes in order; constants fold on the host
//      (onnx_const.cpp), every op on the model's data becomes an IrOp whose
//      output shape is inferred by the leanai kernel itself, at two batch
//      sizes, so a value that loses the batch axis is caught at its node;
//   2. rewrite: the Erf form of GELU -> gelu, linear + constant Add -> linear
//      with bias, then drop ops nothing reads;
//   3. emit: a Graph with the surviving ops, constants as parameters.
#include "leanai/io/onnx_import.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include <onnx/onnx_pb.h>

#include "leanai/core/error.h"
#include "leanai/data/gz_file.h"
#include "leanai/graph/op.h"
#include "leanai/io/onnx_const.h"

namespace leanai {
namespace {

using namespace onnx_import;

constexpr int kMinOpset = 11, kMaxOpset = 17;
constexpr int64_t kMaxElements = int64_t{1} << 31;

// Marks an ONNX value name that leanai does not produce (e.g. MaxPool's Indices).
constexpr int kUnavailable = -2;

// ---------------------------------------------------------------------------
// Tensors and attributes
// ---------------------------------------------------------------------------

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      uint32_t m = mant;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (m & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <typename T>
std::vector<T> raw_values(const std::string& raw, int64_t numel, const std::string& what) {
  check(raw.size() == static_cast<size_t>(numel) * sizeof(T),
        what + " has " + std::to_string(raw.size()) + " bytes of data but its shape needs " +
            std::to_string(numel * static_cast<int64_t>(sizeof(T))) + "; the file is corrupt");
  std::vector<T> v(numel);
  if (numel > 0) std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

template <typename Field>
void check_count(const Field& field, int64_t numel, const std::string& what) {
  check(field.size() == numel, what + " holds " + std::to_string(field.size()) + " values but its shape needs " +
                                   std::to_string(numel) + "; the file is corrupt");
}

Const tensor_to_const(const onnx::TensorProto& t, const std::string& what) {
  check(t.data_location() != onnx::TensorProto::EXTERNAL && t.external_data_size() == 0,
        what + " keeps its data in an external file, which leanai does not read; save the model with the weights "
               "inside (onnx.save_model(model, path, save_as_external_data=False))");
  Shape shape;
  int64_t numel = 1;
  for (int64_t d : t.dims()) {
    check(d >= 0 && d < kMaxElements, what + " has a bad dimension " + std::to_string(d) + "; the file is corrupt");
    shape.push_back(d);
    numel *= d;
    check(numel < kMaxElements, what + " is too large (more than 2^31 values)");
  }
  const bool raw = t.has_raw_data();
  using TP = onnx::TensorProto;
  auto ints_from = [&](auto values) {
    std::vector<int64_t> v(values.begin(), values.end());
    return Const::ints(shape, std::move(v));
  };
  switch (t.data_type()) {
    case TP::FLOAT:
      if (raw) return Const::floats(shape, raw_values<float>(t.raw_data(), numel, what));
      check_count(t.float_data(), numel, what);
      return Const::floats(shape, std::vector<float>(t.float_data().begin(), t.float_data().end()));
    case TP::DOUBLE: {
      std::vector<double> d;
      if (raw) {
        d = raw_values<double>(t.raw_data(), numel, what);
      } else {
        check_count(t.double_data(), numel, what);
        d.assign(t.double_data().begin(), t.double_data().end());
      }
      return Const::floats(shape, std::vector<float>(d.begin(), d.end()));
    }
    case TP::FLOAT16: {
      std::vector<uint16_t> h;
      if (raw) {
        h = raw_values<uint16_t>(t.raw_data(), numel, what);
      } else {
        check_count(t.int32_data(), numel, what);
        for (int32_t v : t.int32_data()) h.push_back(static_cast<uint16_t>(v));
      }
      std::vector<float> f;
      for (uint16_t v : h) f.push_back(half_to_float(v));
      return Const::floats(shape, std::move(f));
    }
    case TP::INT64:
      if (raw) return Const::ints(shape, raw_values<int64_t>(t.raw_data(), numel, what));
      check_count(t.int64_data(), numel, what);
      return ints_from(t.int64_data());
    case TP::INT32:
      if (raw) return ints_from(raw_values<int32_t>(t.raw_data(), numel, what));
      check_count(t.int32_data(), numel, what);
      return ints_from(t.int32_data());
    case TP::INT16:
      if (raw) return ints_from(raw_values<int16_t>(t.raw_data(), numel, what));
      check_count(t.int32_data(), numel, what);
      return ints_from(t.int32_data());
    case TP::UINT16:
      if (raw) return ints_from(raw_values<uint16_t>(t.raw_data(), numel, what));
      check_count(t.int32_data(), numel, what);
      return ints_from(t.int32_data());
    case TP::INT8:
      if (raw) return ints_from(raw_values<int8_t>(t.raw_data(), numel, what));
      check_count(t.int32_data(), numel, what);
      return ints_from(t.int32_data());
    case TP::UINT8:
    case TP::BOOL:
      if (raw) return ints_from(raw_values<uint8_t>(t.raw_data(), numel, what));
      check_count(t.int32_data(), numel, what);
      return ints_from(t.int32_data());
    case TP::UINT32:
      if (raw) return ints_from(raw_values<uint32_t>(t.raw_data(), numel, what));
      check_count(t.uint64_data(), numel, what);
      return ints_from(t.uint64_data());
    default:
      throw Error(what + " has ONNX data type " + std::to_string(t.data_type()) +
                  ", which leanai does not import (float, double, float16 and integer tensors are supported)");
  }
}

class NodeAttrs {
 public:
  NodeAttrs(const onnx::NodeProto& node, std::string where) : node_(node), where_(std::move(where)) {}

  const onnx::AttributeProto* find(const std::string& name) const {
    for (const auto& a : node_.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  bool has(const std::string& name) const { return find(name) != nullptr; }
  int64_t i(const std::string& name, int64_t fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    check(a->type() == onnx::AttributeProto::INT, where_ + ": attribute '" + name + "' must be an integer");
    return a->i();
  }
  float f(const std::string& name, float fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    check(a->type() == onnx::AttributeProto::FLOAT, where_ + ": attribute '" + name + "' must be a float");
    return a->f();
  }
  std::string s(const std::string& name, const std::string& fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    check(a->type() == onnx::AttributeProto::STRING, where_ + ": attribute '" + name + "' must be a string");
    return a->s();
  }
  std::vector<int64_t> ints(const std::string& name, std::vector<int64_t> fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    check(a->type() == onnx::AttributeProto::INTS, where_ + ": attribute '" + name + "' must be a list of integers");
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }

 private:
  const onnx::NodeProto& node_;
  std::string where_;
};

// Valid UTF-8 without control characters: names from the file go into one-line
// error messages and into the model file's JSON, which must be valid UTF-8.
std::string clean_text(const std::string& s) {
  std::string out;
  for (size_t k = 0; k < s.size();) {
    const auto c = static_cast<unsigned char>(s[k]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    bool ok = len > 0 && k + len <= s.size();
    for (size_t j = 1; ok && j < len; ++j) ok = (static_cast<unsigned char>(s[k + j]) & 0xc0) == 0x80;
    if (ok && len == 1 && (c < 0x20 || c == 0x7f)) ok = false;
    if (ok) {
      out.append(s, k, len);
      k += len;
    } else {
      out += '?';
      ++k;
    }
  }
  return out;
}

std::string sanitize(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) || std::strchr("._:/-", c) ? c : '_';
  if (out.empty()) out = "const";
  if (out.rfind("optimizer/", 0) == 0) out = "onnx." + out;  // that prefix is the model file's
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// ---------------------------------------------------------------------------
// The importer
// ---------------------------------------------------------------------------

struct Value {
  bool is_const = false;
  Const c;
  Shape sample;       // runtime values: shape without the batch axis
  int producer = -1;  // runtime values: IrOp index; -1 for the model input
  std::string name;   // ONNX name, for parameter names
  bool initializer = false;  // from an ONNX initializer: a trainable parameter
};

struct IrOp {
  std::string op;            // a leanai op, or "erf" until the GELU rewrite
  std::vector<int> inputs;   // value ids
  std::set<int> buffer_slots;  // inputs whose constant is a non-trainable buffer
  json attrs = json::object();
  int output = -1;
  std::string where;  // "node 'conv1' (Conv)"
  std::string node_name;
  bool dead = false;
};

class Importer {
 public:
  explicit Importer(std::string label) : label_(std::move(label)) {}

  OnnxModel run(const onnx::ModelProto& model) {
    try {
      return run_unchecked(model);
    } catch (const Error& e) {
      throw Error(clean_text(label_ + ": " + e.what()));
    } catch (const json::exception& e) {
      throw Error(clean_text(label_ + ": " + e.what()));
    }
  }

 private:
  OnnxModel run_unchecked(const onnx::ModelProto& model);
  void read_opset(const onnx::ModelProto& model);
  void read_input(const onnx::GraphProto& g);
  void convert(const onnx::NodeProto& node, int index);
  void rewrite_gelu();
  void rewrite_linear_bias();
  void remove_dead(int output);
  Graph emit(int output);

  // Values
  int add_value(Value v) {
    values_.push_back(std::move(v));
    return static_cast<int>(values_.size()) - 1;
  }
  int add_const(Const c, const std::string& name, bool initializer = false) {
    Value v;
    v.is_const = true;
    v.c = std::move(c);
    v.name = name;
    v.initializer = initializer;
    return add_value(std::move(v));
  }
  void define(const std::string& name, int value) {
    if (!name.empty()) names_[name] = value;
  }
  int lookup(const std::string& name, const std::string& where) const {
    auto it = names_.find(name);
    check(it != names_.end(), where + " reads '" + name +
                                  "', which is no graph input, initializer or earlier node's output (the graph is not "
                                  "topologically sorted, or the file is corrupt)");
    check(it->second != kUnavailable, where + " reads '" + name + "', an extra output (such as MaxPool's Indices or "
                                                                  "BatchNormalization's training statistics) that leanai does not compute");
    return it->second;
  }
  const Value& val(int id) const { return values_.at(id); }
  bool is_const(int id) const { return id >= 0 && values_[id].is_const; }
  const Const& need_const(int id, const std::string& where, const std::string& role) const {
    check(id >= 0, where + ": the input '" + role + "' is missing");
    check(values_[id].is_const, where + ": the input '" + role +
                                    "' must be a constant (an initializer or folded shape arithmetic), but it depends on the model input");
    return values_[id].c;
  }
  int need_runtime(int id, const std::string& where) const {
    check(id >= 0 && !values_[id].is_const, where + ": expected the model's data as the first input");
    return id;
  }
  Shape full_shape(int id) const {
    if (values_[id].is_const) return values_[id].c.shape;
    Shape s = values_[id].sample;
    s.insert(s.begin(), kBatchDim);
    return s;
  }
  int64_t full_rank(int id) const { return static_cast<int64_t>(values_[id].sample.size()) + 1; }

  // Appends an op on runtime data; infers its output shape with the leanai
  // kernel at batch sizes 2 and 3 and checks the batch stays the first axis.
  int emit_op(const std::string& op, const std::vector<int>& inputs, json attrs, const std::string& where,
              const std::string& node_name, const std::string& output_name, std::set<int> buffer_slots = {});
  // reshape to [batch] + sample, or the input itself when nothing changes.
  int emit_reshape(int x, const Shape& sample, const std::string& where, const std::string& node_name,
                   const std::string& output_name) {
    if (val(x).sample == sample) return x;
    json target = json::array({0});
    for (int64_t d : sample) target.push_back(d);
    return emit_op("reshape", {x}, {{"shape", target}}, where, node_name, output_name);
  }

  // Op converters
  void convert_gemm(const std::vector<int>& in, const NodeAttrs& a, const std::string& where, const onnx::NodeProto& n);
  void convert_matmul(const std::vector<int>& in, const std::string& where, const onnx::NodeProto& n);
  void convert_conv(const std::vector<int>& in, const NodeAttrs& a, const std::string& where, const onnx::NodeProto& n);
  void convert_pool(bool is_max, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                    const onnx::NodeProto& n);
  void convert_reshape(const std::vector<int>& in, const NodeAttrs& a, const std::string& where, const onnx::NodeProto& n);
  void convert_squeeze(bool squeeze, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                       const onnx::NodeProto& n);
  void convert_softmax(bool log, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                       const onnx::NodeProto& n);
  // When x comes from a zero Pad and `pads` is zero, returns the Pad's input
  // and sets `pads` to its padding; otherwise returns x.
  int absorb_pad(int x, std::vector<int64_t>& pads) const {
    const int p = val(x).producer;
    if (p < 0 || ops_[p].op != "pad2d" || pads != std::vector<int64_t>{0, 0}) return x;
    pads = ops_[p].attrs["padding"].get<std::vector<int64_t>>();
    return ops_[p].inputs[0];
  }
  // Symmetric 2-D padding from ONNX pads/auto_pad, for conv and pooling.
  std::vector<int64_t> symmetric_pads(const NodeAttrs& a, const Shape& spatial, const std::vector<int64_t>& kernel,
                                      const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation,
                                      const std::string& where) const;

  std::string label_;
  std::vector<Value> values_;
  std::map<std::string, int> names_;
  std::vector<IrOp> ops_;
  int opset_ = 0;
  int64_t fixed_batch_ = -1;  // the file's batch size when fixed, else -1
  std::string input_name_;
  int input_value_ = -1;
};

int Importer::emit_op(const std::string& op, const std::vector<int>& inputs, json attrs, const std::string& where,
                      const std::string& node_name, const std::string& output_name, std::set<int> buffer_slots) {
  Shape sample;
  if (op == "erf") {
    sample = val(inputs[0]).sample;
  } else if (op == "pad2d") {
    sample = val(inputs[0]).sample;
    sample[1] += 2 * attrs["padding"][0].get<int64_t>();
    sample[2] += 2 * attrs["padding"][1].get<int64_t>();
  } else {
    Node node;
    node.op = op;
    node.attrs = attrs;
    std::vector<Shape> outs;
    try {
      std::unique_ptr<OpKernel> kernel = find_op(op).make(node);
      for (int64_t batch : {2, 3}) {
        std::vector<Shape> shapes;
        for (int id : inputs) {
          Shape s = full_shape(id);
          if (!val(id).is_const) s[0] = batch;
          shapes.push_back(s);
        }
        outs.push_back(kernel->prepare(shapes, false));
      }
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    check(!outs[0].empty() && outs[0][0] == 2 && !outs[1].empty() && outs[1][0] == 3 &&
              Shape(outs[0].begin() + 1, outs[0].end()) == Shape(outs[1].begin() + 1, outs[1].end()),
          where + ": the result does not keep the batch as its first axis (at batch 2 it is " + shape_str(outs[0]) +
              ", at batch 3 " + shape_str(outs[1]) + "); leanai graphs carry the batch as the first axis of every value");
    sample.assign(outs[0].begin() + 1, outs[0].end());
  }
  IrOp ir;
  ir.op = op;
  ir.inputs = inputs;
  ir.buffer_slots = std::move(buffer_slots);
  ir.attrs = std::move(attrs);
  ir.where = where;
  ir.node_name = node_name;
  Value v;
  v.sample = sample;
  v.producer = static_cast<int>(ops_.size());
  v.name = output_name;
  ir.output = add_value(std::move(v));
  ops_.push_back(std::move(ir));
  return ops_.back().output;
}

void Importer::read_opset(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = static_cast<int>(o.version());
  check(opset_ > 0, "declares no opset for the default ONNX domain (an incomplete or truncated file?)");
  check(opset_ >= kMinOpset && opset_ <= kMaxOpset,
        "uses ONNX opset " + std::to_string(opset_) + "; leanai imports opsets " + std::to_string(kMinOpset) + " to " +
            std::to_string(kMaxOpset) + " (re-export, e.g. torch.onnx.export(..., opset_version=17))");
}

void Importer::read_input(const onnx::GraphProto& g) {
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());
  std::vector<const onnx::ValueInfoProto*> inputs;
  for (const auto& i : g.input())
    if (!initializers.count(i.name())) inputs.push_back(&i);
  std::vector<std::string> names;
  for (const auto* i : inputs) names.push_back("'" + i->name() + "'");
  check(inputs.size() == 1, "has " + std::to_string(inputs.size()) + " graph inputs" +
                                (names.empty() ? "" : " (" + join(names) + ")") +
                                "; leanai imports models with exactly one input");
  const onnx::ValueInfoProto& in = *inputs[0];
  input_name_ = clean_text(in.name());
  const std::string what = "input '" + in.name() + "'";
  check(in.type().has_tensor_type(), what + " is not a tensor");
  const auto& tt = in.type().tensor_type();
  check(tt.elem_type() == onnx::TensorProto::FLOAT,
        what + " has ONNX element type " + std::to_string(tt.elem_type()) + "; leanai imports float32 inputs");
  check(tt.has_shape() && tt.shape().dim_size() >= 1,
        what + " has no shape; leanai needs [batch, ...] with fixed sizes after the batch axis");
  Value v;
  for (int k = 0; k < tt.shape().dim_size(); ++k) {
    const auto& d = tt.shape().dim(k);
    if (k == 0) {
      if (d.has_dim_value() && d.dim_value() > 0) fixed_batch_ = d.dim_value();
      continue;
    }
    check(d.has_dim_value() && d.dim_value() >= 1 && d.dim_value() <= (int64_t{1} << 24),
          what + " has " + (d.has_dim_param() ? "a symbolic size '" + d.dim_param() + "'" : std::string("no fixed size")) +
              " at axis " + std::to_string(k) + "; only the batch axis (axis 0) may vary");
    v.sample.push_back(d.dim_value());
  }
  v.name = in.name();
  input_value_ = add_value(std::move(v));
  define(in.name(), input_value_);
}

OnnxModel Importer::run_unchecked(const onnx::ModelProto& model) {
  check(model.has_graph() && model.graph().node_size() > 0, "is not an ONNX model (it has no graph nodes)");
  read_opset(model);
  const onnx::GraphProto& g = model.graph();
  for (const auto& t : g.initializer()) {
    check(!t.name().empty(), "has an initializer without a name; the file is corrupt");
    define(t.name(), add_const(tensor_to_const(t, "initializer '" + t.name() + "'"), t.name(), true));
  }
  read_input(g);
  std::vector<std::string> outs;
  for (const auto& o : g.output()) outs.push_back("'" + o.name() + "'");
  check(g.output_size() == 1, "has " + std::to_string(g.output_size()) + " graph outputs" +
                                  (outs.empty() ? "" : " (" + join(outs) + ")") +
                                  "; leanai imports models with exactly one output");
  for (int k = 0; k < g.node_size(); ++k) convert(g.node(k), k);
  const int output = lookup(g.output(0).name(), "the graph output");
  check(!val(output).is_const && val(output).producer >= 0,
        "the graph output '" + g.output(0).name() + "' does not depend on the model input (or is the input itself)");
  rewrite_gelu();
  rewrite_linear_bias();
  remove_dead(output);
  for (const IrOp& op : ops_) {
    check(op.dead || op.op != "erf", op.where + ": Erf is supported only inside GELU, x * 0.5 * (1 + erf(x / sqrt(2)))");
    check(op.dead || op.op != "pad2d", op.where + ": Pad is supported only where it feeds Conv or AveragePool "
                                                  "(it becomes their padding)");
  }

  OnnxModel result;
  result.graph = emit(output);
  Shape input_shape = val(input_value_).sample;
  json input_json = json::array({"batch"});
  for (int64_t d : input_shape) input_json.push_back(d);
  result.source = {{"format", "onnx"},
                   {"file", clean_text(label_)},
                   {"producer", clean_text(model.producer_name())},
                   {"producer_version", clean_text(model.producer_version())},
                   {"ir_version", model.ir_version()},
                   {"opset", opset_},
                   {"graph_name", clean_text(g.name())},
                   {"input", {{"name", input_name_}, {"shape", input_json}}},
                   {"output", clean_text(g.output(0).name())},
                   {"onnx_nodes", g.node_size()}};
  return result;
}

// ---------------------------------------------------------------------------
// Node conversion
// ---------------------------------------------------------------------------

const std::set<std::string>& folded_only_ops() {
  static const std::set<std::string> ops = {"Shape", "Gather", "Slice", "Neg", "Sqrt", "ConstantOfShape",
                                            "DequantizeLinear"};
  return ops;
}

void Importer::convert(const onnx::NodeProto& n, int index) {
  const std::string& type = n.op_type();
  const std::string node_name = n.name().empty() ? "#" + std::to_string(index) : clean_text(n.name());
  const std::string where = "node '" + node_name + "' (" + type + ")";
  const auto& supported = onnx_supported_ops();
  const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
  check(default_domain && std::find(supported.begin(), supported.end(), type) != supported.end(),
        "unsupported operator '" + (default_domain ? type : n.domain() + "." + type) + "' in node '" + node_name +
            "'; leanai imports " + join(supported));
  check(n.output_size() >= 1 && !n.output(0).empty(), where + " has no output");
  const NodeAttrs a(n, where);
  std::vector<int> in;
  bool all_const = true;
  for (const std::string& name : n.input()) {
    in.push_back(name.empty() ? -1 : lookup(name, where));
    if (!name.empty() && !val(in.back()).is_const) all_const = false;
  }
  auto input = [&](size_t k) { return k < in.size() ? in[k] : -1; };
  check(type == "Constant" || input(0) >= 0, where + ": the first input is missing");
  const std::string& out = n.output(0);
  // Extra outputs leanai does not compute: reading them later is an error.
  for (int k = 1; k < n.output_size(); ++k) define(n.output(k), kUnavailable);
  auto define_const = [&](Const c) { define(out, add_const(std::move(c), out)); };
  // A rearranged initializer (Transpose, Reshape, Cast... of a weight) keeps
  // the initializer's name and role: PyTorch exports some weights that way.
  auto define_derived = [&](Const c) {
    const Value& from = val(in.at(0));
    define(out, from.initializer ? add_const(std::move(c), std::string(from.name), true) : add_const(std::move(c), out));
  };

  if (type == "Constant") {
    if (const auto* t = a.find("value")) {
      check(t->type() == onnx::AttributeProto::TENSOR, where + ": attribute 'value' must be a tensor");
      return define_const(tensor_to_const(t->t(), where + " value"));
    }
    if (a.has("value_float")) return define_const(Const::floats({}, {a.f("value_float", 0)}));
    if (a.has("value_int")) return define_const(Const::ints({}, {a.i("value_int", 0)}));
    if (const auto* v = a.find("value_floats"))
      return define_const(Const::floats({v->floats_size()}, std::vector<float>(v->floats().begin(), v->floats().end())));
    if (a.has("value_ints")) {
      std::vector<int64_t> v = a.ints("value_ints", {});
      const int64_t size = static_cast<int64_t>(v.size());
      return define_const(Const::ints({size}, std::move(v)));
    }
    throw Error(where + ": only tensor, float and integer constants are supported (not sparse or string ones)");
  }
  if (type == "Identity") return define(out, in.at(0));
  if (type == "Dropout") {
    const int mode = input(2);
    if (mode >= 0)
      check(need_const(mode, where, "training_mode").numel() == 1 && val(mode).c.at(0) == 0.0,
            where + ": dropout in training mode is not supported; export the model in eval mode");
    return define(out, in.at(0));
  }
  if (type == "Cast") {
    const int to = static_cast<int>(a.i("to", 0));
    if (all_const) return define_derived(fold_cast(val(in.at(0)).c, to, where));
    check(to == onnx::TensorProto::FLOAT, where + ": casting the model's data to ONNX type " + std::to_string(to) +
                                              " is not supported (only to float32)");
    return define(out, in.at(0));
  }
  if (type == "Shape") {
    Shape s = full_shape(in.at(0));
    const int64_t rank = static_cast<int64_t>(s.size());
    int64_t start = a.i("start", 0), end = a.i("end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
    std::vector<int64_t> dims(s.begin() + start, s.begin() + std::max(start, end));
    const int64_t count = static_cast<int64_t>(dims.size());
    return define_const(Const::ints({count}, std::move(dims)));
  }

  // Operators that fold when every input is a constant.
  if (all_const) {
    auto c = [&](size_t k) -> const Const& { return need_const(input(k), where, "input " + std::to_string(k)); };
    if (type == "Add" || type == "Sub" || type == "Mul" || type == "Div") return define_const(fold_binary(type, c(0), c(1), where));
    if (type == "Neg" || type == "Sqrt") return define_const(fold_unary(type, c(0), where));
    if (type == "Gather") return define_const(fold_gather(c(0), c(1), a.i("axis", 0), where));
    if (type == "Slice") {
      auto opt = [&](size_t k) { return input(k) >= 0 ? c(k).as_ints(where) : std::vector<int64_t>{}; };
      return define_const(fold_slice(c(0), c(1).as_ints(where), c(2).as_ints(where), opt(3), opt(4), where));
    }
    if (type == "Concat") {
      std::vector<const Const*> parts;
      for (size_t k = 0; k < in.size(); ++k) parts.push_back(&c(k));
      return define_const(fold_concat(parts, a.i("axis", 0), where));
    }
    if (type == "Unsqueeze" || type == "Squeeze") {
      const Const& x = c(0);
      std::vector<int64_t> axes = opset_ >= 13 ? (input(1) >= 0 ? c(1).as_ints(where) : std::vector<int64_t>{})
                                               : a.ints("axes", {});
      Shape s = x.shape;
      if (type == "Unsqueeze") {
        const int64_t rank = static_cast<int64_t>(s.size() + axes.size());
        for (int64_t& ax : axes) ax = normalize_axis(ax, rank, where);
        std::sort(axes.begin(), axes.end());
        for (int64_t ax : axes) s.insert(s.begin() + ax, 1);
      } else {
        const int64_t rank = static_cast<int64_t>(s.size());
        std::vector<bool> drop(rank, false);
        for (int64_t ax : axes) drop[normalize_axis(ax, rank, where)] = true;
        Shape kept;
        for (int64_t d = 0; d < rank; ++d) {
          if (axes.empty() ? s[d] == 1 : drop[d]) {
            check(s[d] == 1, where + ": cannot squeeze axis " + std::to_string(d) + " of size " + std::to_string(s[d]));
            continue;
          }
          kept.push_back(s[d]);
        }
        s = kept;
      }
      return define_derived(with_shape(x, s));
    }
    if (type == "Reshape")
      return define_derived(with_shape(c(0), resolve_reshape(c(0).shape, c(1).as_ints(where), a.i("allowzero", 0) != 0, where)));
    if (type == "Flatten") {
      const Shape& s = c(0).shape;
      const int64_t rank = static_cast<int64_t>(s.size());
      int64_t axis = a.i("axis", 1);
      check(axis >= -rank && axis <= rank, where + ": axis out of range");
      if (axis < 0) axis += rank;
      return define_derived(with_shape(c(0), {shape_numel(Shape(s.begin(), s.begin() + axis)), shape_numel(Shape(s.begin() + axis, s.end()))}));
    }
    if (type == "Transpose") return define_derived(fold_transpose(c(0), a.ints("perm", {}), where));
    if (type == "DequantizeLinear")  // int8 weights become f32 parameters
      return define_derived(fold_dequantize(c(0), c(1), input(2) >= 0 ? &c(2) : nullptr, a.i("axis", 1), where));
    if (type == "ConstantOfShape") {
      const std::vector<int64_t> dims = c(0).as_ints(where);
      for (int64_t d : dims)
        check(d >= 0 && d <= kMaxFoldedElements && d != kBatchDim, where + ": needs a fixed, non-negative shape");
      Const fill = Const::floats({}, {0.0f});
      if (const auto* t = a.find("value")) fill = tensor_to_const(t->t(), where + " value");
      check(fill.numel() == 1, where + ": 'value' must hold one element");
      const Shape shape(dims.begin(), dims.end());
      check(shape_numel(shape) <= kMaxFoldedElements, where + ": the shape " + shape_str(shape) + " is too large");
      if (fill.is_float) return define_const(Const::floats(shape, std::vector<float>(shape_numel(shape), fill.f[0])));
      return define_const(Const::ints(shape, std::vector<int64_t>(shape_numel(shape), fill.i[0])));
    }
    throw Error(where + ": computes only on constants, and leanai folds only shape arithmetic "
                        "(Add, Sub, Mul, Div, Neg, Sqrt, Gather, Slice, Concat, (Un)Squeeze, Reshape, Flatten, Transpose, Cast) "
                        "and DequantizeLinear");
  }
  check(!folded_only_ops().count(type),
        where + ": " + type + " is supported on constants (shape arithmetic) only, not on the model's data");

  const int x = input(0);
  if (type == "Relu" || type == "Sigmoid" || type == "Tanh") {
    std::string op = type == "Relu" ? "relu" : type == "Sigmoid" ? "sigmoid" : "tanh";
    return define(out, emit_op(op, {need_runtime(x, where)}, json::object(), where, node_name, out));
  }
  if (type == "LeakyRelu")
    return define(out, emit_op("leaky_relu", {need_runtime(x, where)}, {{"alpha", a.f("alpha", 0.01f)}}, where, node_name, out));
  if (type == "Erf") return define(out, emit_op("erf", {need_runtime(x, where)}, json::object(), where, node_name, out));
  if (type == "Clip") {
    json attrs = json::object();
    if (input(1) >= 0) {
      const Const& lo = need_const(input(1), where, "min");
      check(lo.numel() == 1, where + ": 'min' must be a scalar");
      attrs["min"] = lo.at(0);
    }
    if (input(2) >= 0) {
      const Const& hi = need_const(input(2), where, "max");
      check(hi.numel() == 1, where + ": 'max' must be a scalar");
      attrs["max"] = hi.at(0);
    }
    return define(out, emit_op("clip", {need_runtime(x, where)}, attrs, where, node_name, out));
  }
  if (type == "Add" || type == "Sub" || type == "Mul" || type == "Div") {
    std::string op = type == "Add" ? "add" : type == "Sub" ? "sub" : type == "Mul" ? "mul" : "div";
    check(in.size() == 2 && in[0] >= 0 && in[1] >= 0, where + ": needs two inputs");
    return define(out, emit_op(op, {in[0], in[1]}, json::object(), where, node_name, out));
  }
  if (type == "Concat") {
    const auto first_runtime = std::find_if(in.begin(), in.end(), [&](int v) { return v >= 0 && !is_const(v); });
    const int64_t rank = full_rank(*first_runtime);  // exists: not all inputs are constant
    const int64_t axis = normalize_axis(a.i("axis", 0), rank, where);
    check(axis != 0, where + ": concatenating along the batch axis is not supported");
    return define(out, emit_op("concat", in, {{"axis", axis}}, where, node_name, out));
  }
  if (type == "Gemm") return convert_gemm(in, a, where, n);
  if (type == "MatMul") return convert_matmul(in, where, n);
  if (type == "Conv") return convert_conv(in, a, where, n);
  if (type == "MaxPool" || type == "AveragePool") return convert_pool(type == "MaxPool", in, a, where, n);
  if (type == "GlobalAveragePool") {
    check(val(need_runtime(x, where)).sample.size() == 3,
          where + ": only 2-D global pooling (input [N, C, H, W]) is supported");
    return define(out, emit_op("global_avgpool", {x}, json::object(), where, node_name, out));
  }
  if (type == "BatchNormalization") {
    check(a.i("training_mode", 0) == 0, where + ": batch-norm in training mode is not supported; export in eval mode");
    check(in.size() == 5, where + ": needs 5 inputs (X, scale, B, input_mean, input_var)");
    for (size_t k = 1; k < 5; ++k) need_const(in[k], where, std::vector<std::string>{"", "scale", "B", "input_mean", "input_var"}[k]);
    // ONNX's momentum weighs the old running value (0.9); leanai's, as PyTorch's, the new batch (0.1).
    const double momentum = std::clamp(1.0 - a.f("momentum", 0.9f), 0.0, 1.0);
    return define(out, emit_op("batchnorm", {need_runtime(x, where), in[1], in[2], in[3], in[4]},
                               {{"eps", a.f("epsilon", 1e-5f)}, {"momentum", momentum}}, where, node_name, out, {3, 4}));
  }
  if (type == "Flatten") {
    const int64_t rank = full_rank(need_runtime(x, where));
    int64_t axis = a.i("axis", 1);
    check(axis >= -rank && axis <= rank, where + ": axis " + std::to_string(axis) + " is out of range");
    if (axis < 0) axis += rank;
    check(axis == 1, where + ": Flatten with axis " + std::to_string(axis) +
                         " mixes the batch axis with others; only axis 1 is supported on the model's data");
    return define(out, emit_op("flatten", {x}, {{"axis", 1}}, where, node_name, out));
  }
  if (type == "Reshape") return convert_reshape(in, a, where, n);
  if (type == "Pad") {
    // PyTorch writes AvgPool2d(count_include_pad=True) with padding as Pad + AveragePool;
    // a zero Pad folds into the padding of the Conv or AveragePool it feeds.
    check(a.s("mode", "constant") == "constant", where + ": only constant (zero) padding is supported");
    const std::vector<int64_t> pads = need_const(input(1), where, "pads").as_ints(where);
    if (input(2) >= 0) {
      const Const& value = need_const(input(2), where, "constant_value");
      check(value.numel() == 1 && value.at(0) == 0.0, where + ": only zero padding is supported");
    }
    check(full_rank(need_runtime(x, where)) == 4 && pads.size() == 8,
          where + ": only padding of [N, C, H, W] values is supported");
    check(pads[0] == 0 && pads[1] == 0 && pads[4] == 0 && pads[5] == 0 && pads[2] == pads[6] && pads[3] == pads[7] &&
              pads[2] >= 0 && pads[3] >= 0,
          where + ": only equal, non-negative padding of the two spatial axes is supported, got pads " + shape_str(pads));
    return define(out, emit_op("pad2d", {x}, {{"padding", {pads[2], pads[3]}}}, where, node_name, out));
  }
  if (type == "Squeeze" || type == "Unsqueeze") return convert_squeeze(type == "Squeeze", in, a, where, n);
  if (type == "Transpose") {
    const int64_t rank = full_rank(need_runtime(x, where));
    std::vector<int64_t> perm = a.ints("perm", {});
    if (perm.empty())
      for (int64_t k = rank - 1; k >= 0; --k) perm.push_back(k);
    check(!perm.empty() && perm[0] == 0, where + ": the permutation " + shape_str(perm) +
                                             " moves the batch axis; leanai keeps the batch as the first axis");
    return define(out, emit_op("transpose", {x}, {{"perm", perm}}, where, node_name, out));
  }
  if (type == "Softmax" || type == "LogSoftmax") return convert_softmax(type == "LogSoftmax", in, a, where, n);
  throw Error(where + ": not supported here");  // every name in onnx_supported_ops() is handled above
}

void Importer::convert_gemm(const std::vector<int>& in, const NodeAttrs& a, const std::string& where, const onnx::NodeProto& n) {
  check(in.size() >= 2, where + ": needs inputs A and B");
  const int x = need_runtime(in[0], where);
  check(a.i("transA", 0) == 0, where + ": transA=1 (transposing the batch input) is not supported");
  check(val(x).sample.size() == 1, where + ": input A must be [batch, features], got " + shape_str(full_shape(x)));
  const Const b = need_const(in[1], where, "B").as_floats(where);
  check(b.shape.size() == 2, where + ": B must be a matrix, got " + shape_str(b.shape));
  const float alpha = a.f("alpha", 1.0f), beta = a.f("beta", 1.0f);
  const bool trans_b = a.i("transB", 0) != 0;
  const int64_t out_features = trans_b ? b.shape[0] : b.shape[1];
  // linear's weight is [out, in]: B as is when transB=1, else B transposed.
  int weight = in[1];
  if (!trans_b || alpha != 1.0f || !val(in[1]).c.is_float) {
    Const w = trans_b ? b : fold_transpose(b, {1, 0}, where);
    for (float& v : w.f) v *= alpha;
    weight = add_const(std::move(w), val(in[1]).name, val(in[1]).initializer);
  }
  std::vector<int> inputs = {x, weight};
  const int c = in.size() >= 3 ? in[2] : -1;
  int runtime_c = -1;
  if (c >= 0 && is_const(c)) {
    const Const given = val(c).c;
    Const bias = given.as_floats(where);
    if (bias.numel() == 1) {
      bias = Const::floats({out_features}, std::vector<float>(out_features, bias.f[0]));
    } else {
      check(bias.shape == Shape{out_features} || bias.shape == Shape{1, out_features},
            where + ": C of shape " + shape_str(bias.shape) + " is not supported (only [" + std::to_string(out_features) +
                "], [1, " + std::to_string(out_features) + "] or a scalar)");
      bias.shape = {out_features};
    }
    for (float& v : bias.f) v *= beta;
    const bool unchanged = beta == 1.0f && given.is_float && given.shape == bias.shape;
    inputs.push_back(unchanged ? c : add_const(std::move(bias), val(c).name, val(c).initializer));
  } else if (c >= 0) {
    check(beta == 1.0f, where + ": beta != 1 with a non-constant C is not supported");
    runtime_c = c;
  }
  if (runtime_c < 0) return define(n.output(0), emit_op("linear", inputs, json::object(), where, n.name(), n.output(0)));
  const int y = emit_op("linear", inputs, json::object(), where, n.name(), n.output(0) + "/linear");
  define(n.output(0), emit_op("add", {y, runtime_c}, json::object(), where, n.name(), n.output(0)));
}

void Importer::convert_matmul(const std::vector<int>& in, const std::string& where, const onnx::NodeProto& n) {
  check(in.size() == 2 && in[0] >= 0 && in[1] >= 0, where + ": needs two inputs");
  check(!is_const(in[0]), where + ": a constant left operand with the model's data on the right is not supported");
  if (!is_const(in[1])) return define(n.output(0), emit_op("matmul", {in[0], in[1]}, json::object(), where, n.name(), n.output(0)));
  const Const b = val(in[1]).c;
  check(b.shape.size() == 2, where + ": a constant right operand must be a matrix [in, out], got " + shape_str(b.shape));
  const int w = add_const(fold_transpose(b.as_floats(where), {1, 0}, where), val(in[1]).name, val(in[1]).initializer);
  define(n.output(0), emit_op("linear", {in[0], w}, json::object(), where, n.name(), n.output(0)));
}

std::vector<int64_t> Importer::symmetric_pads(const NodeAttrs& a, const Shape& spatial, const std::vector<int64_t>& kernel,
                                              const std::vector<int64_t>& stride, const std::vector<int64_t>& dilation,
                                              const std::string& where) const {
  const std::string auto_pad = a.s("auto_pad", "NOTSET");
  std::vector<int64_t> pads = a.ints("pads", {0, 0, 0, 0});
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (int k = 0; k < 2; ++k) {
      const int64_t out = (spatial[k] + stride[k] - 1) / stride[k];
      const int64_t total = std::max<int64_t>((out - 1) * stride[k] + (kernel[k] - 1) * dilation[k] + 1 - spatial[k], 0);
      check(total % 2 == 0, where + ": auto_pad=" + auto_pad + " needs asymmetric padding here, which is not supported");
      pads[k] = pads[k + 2] = total / 2;
    }
  } else {
    check(auto_pad == "NOTSET", where + ": auto_pad '" + auto_pad + "' is not supported");
  }
  check(pads.size() == 4, where + ": pads must have 4 values for 2-D, got " + shape_str(pads));
  check(pads[0] == pads[2] && pads[1] == pads[3],
        where + ": asymmetric pads " + shape_str(pads) + " are not supported (begin and end padding must be equal)");
  return {pads[0], pads[1]};
}

void Importer::convert_conv(const std::vector<int>& in, const NodeAttrs& a, const std::string& where, const onnx::NodeProto& n) {
  const int x = need_runtime(in.at(0), where);
  check(val(x).sample.size() == 3, where + ": only 2-D convolution (input [N, C, H, W]) is supported, got input " +
                                       shape_str(full_shape(x)));
  check(in.size() >= 2, where + ": needs a weight");
  const Const& w = need_const(in[1], where, "W");
  check(w.shape.size() == 4, where + ": the weight must be [OC, C/group, KH, KW], got " + shape_str(w.shape));
  const std::vector<int64_t> kernel = {w.shape[2], w.shape[3]};
  check(a.ints("kernel_shape", kernel) == kernel, where + ": kernel_shape does not match the weight's shape " + shape_str(w.shape));
  const std::vector<int64_t> stride = a.ints("strides", {1, 1}), dilation = a.ints("dilations", {1, 1});
  check(stride.size() == 2 && dilation.size() == 2, where + ": strides and dilations must have 2 values");
  const Shape s = val(x).sample;
  std::vector<int64_t> pads = symmetric_pads(a, {s[1], s[2]}, kernel, stride, dilation, where);
  const int unpadded = absorb_pad(x, pads);
  std::vector<int> inputs = {unpadded, in[1]};
  if (in.size() >= 3 && in[2] >= 0) {
    need_const(in[2], where, "B");
    inputs.push_back(in[2]);
  }
  json attrs = {{"stride", stride}, {"padding", pads}, {"dilation", dilation}, {"groups", a.i("group", 1)}};
  define(n.output(0), emit_op("conv2d", inputs, attrs, where, n.name(), n.output(0)));
}

void Importer::convert_pool(bool is_max, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                            const onnx::NodeProto& n) {
  const int x = need_runtime(in.at(0), where);
  check(val(x).sample.size() == 3, where + ": only 2-D pooling (input [N, C, H, W]) is supported, got input " +
                                       shape_str(full_shape(x)));
  const std::vector<int64_t> kernel = a.ints("kernel_shape", {});
  check(kernel.size() == 2, where + ": kernel_shape must have 2 values");
  const std::vector<int64_t> stride = a.ints("strides", {1, 1});
  check(stride.size() == 2, where + ": strides must have 2 values");
  check(a.i("ceil_mode", 0) == 0, where + ": ceil_mode=1 is not supported (PyTorch's default ceil_mode=False is)");
  const std::vector<int64_t> dilation = a.ints("dilations", {1, 1});
  check(dilation == std::vector<int64_t>{1, 1}, where + ": dilated pooling is not supported");
  const Shape s = val(x).sample;
  std::vector<int64_t> pads = symmetric_pads(a, {s[1], s[2]}, kernel, stride, dilation, where);
  bool include_pad = a.i("count_include_pad", 0) != 0;
  int source = x;
  if (!is_max) {  // zeros padded by a Pad node are values the average counts
    source = absorb_pad(x, pads);
    include_pad = include_pad || source != x;
  }
  json attrs = {{"kernel", kernel}, {"stride", stride}, {"padding", pads}};
  if (!is_max) attrs["count_include_pad"] = include_pad ? 1 : 0;
  define(n.output(0), emit_op(is_max ? "maxpool2d" : "avgpool2d", {source}, attrs, where, n.name(), n.output(0)));
}

void Importer::convert_reshape(const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                               const onnx::NodeProto& n) {
  const int x = need_runtime(in.at(0), where);
  check(in.size() >= 2, where + ": needs a shape input");
  const std::vector<int64_t> target = need_const(in[1], where, "shape").as_ints(where);
  const bool allow_zero = a.i("allowzero", 0) != 0;
  const Shape sample = val(x).sample;
  check(!target.empty(), where + ": an empty target shape would drop the batch axis");
  // Everything after the first axis, with 0 = "copy the input's size" resolved.
  std::vector<int64_t> rest(target.begin() + 1, target.end());
  for (size_t k = 0; k < rest.size(); ++k) {
    check(rest[k] != kBatchDim, where + ": the target shape " + "uses the batch size at axis " + std::to_string(k + 1) +
                                    "; only axis 0 may be the batch");
    if (rest[k] == 0 && !allow_zero) {
      check(k < sample.size(), where + ": the target copies axis " + std::to_string(k + 1) + ", which the input lacks");
      rest[k] = sample[k];
    }
  }
  const int64_t first = target[0];
  const bool rest_has_infer = std::count(rest.begin(), rest.end(), -1) > 0;
  // -1 first is the batch only when the other axes hold exactly one sample.
  const bool infers_batch = first == -1 && !rest_has_infer &&
                            std::all_of(rest.begin(), rest.end(), [](int64_t d) { return d > 0; }) &&
                            shape_numel(Shape(rest.begin(), rest.end())) == shape_numel(sample);
  const bool keeps_batch = first == kBatchDim || (first == 0 && !allow_zero) || infers_batch ||
                           (fixed_batch_ > 0 && first == fixed_batch_);
  std::string shown;
  for (int64_t t : target) shown += (shown.empty() ? "" : ", ") + (t == kBatchDim ? std::string("batch") : std::to_string(t));
  check(keeps_batch, where + ": the target shape [" + shown + "] does not keep the batch as the first axis");
  const Shape new_sample = resolve_reshape(sample, rest, true, where + " (target [" + shown + "])");
  define(n.output(0), emit_reshape(x, new_sample, where, n.name(), n.output(0)));
}

void Importer::convert_squeeze(bool squeeze, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                               const onnx::NodeProto& n) {
  const int x = need_runtime(in.at(0), where);
  std::vector<int64_t> axes;
  if (opset_ >= 13) {
    if (in.size() >= 2 && in[1] >= 0) axes = need_const(in[1], where, "axes").as_ints(where);
  } else {
    axes = a.ints("axes", {});
  }
  Shape full = full_shape(x);  // [kBatchDim, sample...]
  if (squeeze) {
    const int64_t rank = static_cast<int64_t>(full.size());
    std::vector<bool> drop(rank, false);
    for (int64_t ax : axes) {
      const int64_t d = normalize_axis(ax, rank, where);
      check(d != 0, where + ": squeezing the batch axis is not supported");
      check(full[d] == 1, where + ": cannot squeeze axis " + std::to_string(d) + " of size " + std::to_string(full[d]));
      drop[d] = true;
    }
    Shape kept;
    for (int64_t d = 1; d < rank; ++d)
      if (!(axes.empty() ? full[d] == 1 : drop[d])) kept.push_back(full[d]);
    return define(n.output(0), emit_reshape(x, kept, where, n.name(), n.output(0)));
  }
  check(!axes.empty(), where + ": Unsqueeze needs axes");
  const int64_t rank = static_cast<int64_t>(full.size() + axes.size());
  for (int64_t& ax : axes) {
    ax = normalize_axis(ax, rank, where);
    check(ax != 0, where + ": inserting an axis before the batch axis is not supported");
  }
  std::sort(axes.begin(), axes.end());
  for (int64_t ax : axes) full.insert(full.begin() + ax, 1);
  define(n.output(0), emit_reshape(x, Shape(full.begin() + 1, full.end()), where, n.name(), n.output(0)));
}

void Importer::convert_softmax(bool log, const std::vector<int>& in, const NodeAttrs& a, const std::string& where,
                               const onnx::NodeProto& n) {
  const int x = need_runtime(in.at(0), where);
  const std::string op = log ? "log_softmax" : "softmax";
  const int64_t rank = full_rank(x);
  const int64_t axis = normalize_axis(a.i("axis", opset_ >= 13 ? -1 : 1), rank, where);
  check(axis != 0, where + ": softmax over the batch axis is not supported");
  if (axis == rank - 1 || opset_ >= 13)
    return define(n.output(0), emit_op(op, {x}, {{"axis", axis == rank - 1 ? -1 : axis}}, where, n.name(), n.output(0)));
  // Before opset 13, softmax runs over all axes from `axis` on, flattened.
  const Shape sample = val(x).sample;
  Shape flat(sample.begin(), sample.begin() + (axis - 1));
  flat.push_back(shape_numel(Shape(sample.begin() + (axis - 1), sample.end())));
  const int f = emit_reshape(x, flat, where, n.name(), n.output(0) + "/flat");
  const int y = emit_op(op, {f}, {{"axis", -1}}, where, n.name(), n.output(0) + "/softmax");
  define(n.output(0), emit_reshape(y, sample, where, n.name(), n.output(0)));
}

// ---------------------------------------------------------------------------
// Rewrites
// ---------------------------------------------------------------------------

bool near(double v, double want) { return std::fabs(v - want) <= 1e-4 * std::max(1.0, std::fabs(want)); }

void Importer::rewrite_gelu() {
  std::vector<int> uses(values_.size(), 0);
  std::vector<int> consumer(values_.size(), -1);
  for (size_t k = 0; k < ops_.size(); ++k)
    for (int v : ops_[k].inputs) {
      uses[v]++;
      consumer[v] = static_cast<int>(k);
    }
  auto sole = [&](int value) -> IrOp* { return uses[value] == 1 ? &ops_[consumer[value]] : nullptr; };
  // The other operand of a binary op `op`, given one of them.
  auto other = [](const IrOp& op, int one) { return op.inputs[0] == one ? op.inputs[1] : op.inputs[0]; };
  auto const_near = [&](int v, double want) { return is_const(v) && val(v).c.numel() == 1 && near(val(v).c.at(0), want); };

  for (IrOp& erf : ops_) {
    if (erf.op != "erf" || erf.dead) continue;
    // u = x / sqrt(2)  or  x * (1 / sqrt(2))
    const int u = erf.inputs[0];
    if (val(u).producer < 0 || uses[u] != 1) continue;
    IrOp& scale = ops_[val(u).producer];
    int x = -1;
    if (scale.op == "div" && const_near(scale.inputs[1], std::sqrt(2.0)) && !is_const(scale.inputs[0])) x = scale.inputs[0];
    if (scale.op == "mul") {
      for (int k = 0; k < 2; ++k)
        if (const_near(scale.inputs[k], 1.0 / std::sqrt(2.0)) && !is_const(scale.inputs[1 - k])) x = scale.inputs[1 - k];
    }
    if (x < 0) continue;
    // a = erf + 1
    IrOp* plus = sole(erf.output);
    if (!plus || plus->op != "add" || !const_near(other(*plus, erf.output), 1.0)) continue;
    IrOp* m1 = sole(plus->output);
    if (!m1 || m1->op != "mul") continue;
    const int m1_other = other(*m1, plus->output);
    IrOp* final_op = nullptr;
    IrOp* extra = nullptr;  // the op holding the 0.5 (or x) outside m1
    if (m1_other == x) {  // (x * a) * 0.5
      IrOp* m2 = sole(m1->output);
      if (m2 && m2->op == "mul" && const_near(other(*m2, m1->output), 0.5)) final_op = m2, extra = m1;
    } else if (const_near(m1_other, 0.5)) {  // x * (a * 0.5)
      IrOp* m2 = sole(m1->output);
      if (m2 && m2->op == "mul" && other(*m2, m1->output) == x) final_op = m2, extra = m1;
    } else if (!is_const(m1_other) && val(m1_other).producer >= 0 && uses[m1_other] == 1) {  // (x * 0.5) * a
      IrOp& half = ops_[val(m1_other).producer];
      if (half.op == "mul" && ((half.inputs[0] == x && const_near(half.inputs[1], 0.5)) ||
                               (half.inputs[1] == x && const_near(half.inputs[0], 0.5))))
        final_op = m1, extra = &half;
    }
    if (!final_op) continue;
    for (IrOp* dead : {&scale, &erf, plus, extra}) dead->dead = true;
    if (m1 != final_op) m1->dead = true;
    final_op->op = "gelu";
    final_op->inputs = {x};
    final_op->attrs = json::object();
    final_op->buffer_slots.clear();
  }
}

void Importer::rewrite_linear_bias() {
  std::vector<int> uses(values_.size(), 0);
  std::vector<int> consumer(values_.size(), -1);
  for (size_t k = 0; k < ops_.size(); ++k)
    if (!ops_[k].dead)
      for (int v : ops_[k].inputs) {
        uses[v]++;
        consumer[v] = static_cast<int>(k);
      }
  for (IrOp& lin : ops_) {
    if (lin.dead || lin.op != "linear" || lin.inputs.size() != 2 || uses[lin.output] != 1) continue;
    IrOp& add = ops_[consumer[lin.output]];
    if (add.op != "add") continue;
    const int b = add.inputs[0] == lin.output ? add.inputs[1] : add.inputs[0];
    const int64_t out_features = val(lin.inputs[1]).c.shape[0];
    if (!is_const(b) || val(b).c.numel() != out_features || val(b).c.shape.empty() ||
        val(b).c.shape.back() != out_features)
      continue;
    // linear now computes the add's value, at the linear's place in the order.
    lin.inputs.push_back(add_const(with_shape(val(b).c.as_floats(add.where), {out_features}), val(b).name, val(b).initializer));
    values_[add.output].producer = values_[lin.output].producer;
    lin.output = add.output;
    add.dead = true;
  }
}

void Importer::remove_dead(int output) {
  std::vector<bool> live(values_.size(), false);
  live[output] = true;
  for (int k = static_cast<int>(ops_.size()) - 1; k >= 0; --k) {
    IrOp& op = ops_[k];
    if (op.dead || !live[op.output]) {
      op.dead = true;
      continue;
    }
    for (int v : op.inputs) live[v] = true;
  }
}

Graph Importer::emit(int output) {
  Graph g;
  std::map<int, int> node_of;  // value id -> graph node id
  node_of[input_value_] = g.add_input(input_name_, val(input_value_).sample);
  std::set<std::string> used_names;
  auto param_node = [&](int v, bool buffer) {
    auto it = node_of.find(v);
    if (it != node_of.end()) return it->second;
    std::string name = sanitize(val(v).name);
    for (int k = 1; used_names.count(name); ++k) name = sanitize(val(v).name) + "." + std::to_string(k);
    used_names.insert(name);
    const int id = g.add_param(name, val(v).c.to_tensor("constant '" + val(v).name + "'"), val(v).initializer && !buffer);
    node_of[v] = id;
    return id;
  };
  for (const IrOp& op : ops_) {
    if (op.dead) continue;
    std::vector<int> ids;
    for (size_t k = 0; k < op.inputs.size(); ++k) {
      const int v = op.inputs[k];
      if (is_const(v)) {
        ids.push_back(param_node(v, op.buffer_slots.count(static_cast<int>(k)) > 0));
      } else {
        auto it = node_of.find(v);
        check(it != node_of.end(), op.where + ": internal error: an input was not emitted");
        ids.push_back(it->second);
      }
    }
    node_of[op.output] = g.add(op.op, ids, op.attrs, clean_text(op.node_name));
  }
  g.set_output(node_of.at(output));
  g.validate();
  return g;
}

}  // namespace

const std::vector<std::string>& onnx_supported_ops() {
  static const std::vector<std::string> ops = {
      "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
      "DequantizeLinear", "Div", "Dropout", "Erf", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu",
      "LogSoftmax", "MatMul", "MaxPool", "Mul", "Neg", "Pad", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax",
      "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze"};
  return ops;
}

OnnxModel import_onnx_bytes(const std::string& bytes, const std::string& label) {
  onnx::ModelProto model;
  check(!bytes.empty(), label + ": the file is empty, not an ONNX model");
  check(bytes.size() < (size_t{1} << 31), label + ": larger than 2 GiB; leanai does not import ONNX files that large");
  check(model.ParseFromString(bytes), label + ": not a readable ONNX model (the protobuf does not parse: the file is "
                                              "corrupt, truncated or not ONNX)");
  return Importer(label).run(model);
}

OnnxModel import_onnx_file(const std::string& path) { return import_onnx_bytes(read_whole_file(path), path); }

}  // namespace leanai
