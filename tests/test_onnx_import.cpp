// ONNX import: every committed fixture (tests/fixtures/onnx, written by
// make_fixtures.py from PyTorch 1.13 at opsets 11, 14 and 17) imports and
// matches PyTorch's output within 1e-4 (max abs difference), at the exported
// batch and at batch 1; the rewrites (GELU, MatMul + Add, Pad + AveragePool)
// happen; and bad files, unsupported operators, unsupported attributes and
// wrong input shapes each give one clear leanai::Error. The error cases build
// small ModelProtos here. The CLI's `leanai import` round-trips through the
// model file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "leanai/core/error.h"
#include "leanai/core/tensor.h"
#include "leanai/graph/executor.h"
#include "leanai/io/model_file.h"
#include "leanai/io/onnx_import.h"
#include "temp_dir.h"

using namespace leanai;
using leanai::test_support::TempDir;

namespace {

const std::string kFixtures = std::string(LEANAI_SOURCE_DIR) + "/tests/fixtures/onnx/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

Tensor read_f32(const std::string& path, const Shape& shape) {
  const std::string bytes = read_bytes(path);
  Tensor t = Tensor::empty(shape);
  EXPECT_EQ(bytes.size(), t.nbytes()) << path;
  if (bytes.size() == t.nbytes()) std::memcpy(t.raw(), bytes.data(), bytes.size());
  return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  return m;
}

struct Fixture {
  std::string name;
  int opset = 0;
  Shape input_shape, output_shape;
  bool dynamic_batch = false;
  std::vector<std::string> ops;
};

std::vector<Fixture> load_manifest() {
  std::vector<Fixture> out;
  const json m = json::parse(read_bytes(kFixtures + "manifest.json"));
  for (const json& f : m.at("fixtures"))
    out.push_back({f.at("name"), f.at("opset"), f.at("input_shape").get<Shape>(), f.at("output_shape").get<Shape>(),
                   f.at("dynamic_batch"), f.at("ops").get<std::vector<std::string>>()});
  return out;
}

const std::vector<Fixture>& fixtures() {
  static const std::vector<Fixture> f = load_manifest();
  return f;
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const Fixture& f : fixtures()) names.push_back(f.name);
  return names;
}

const Fixture& fixture(const std::string& name) {
  for (const Fixture& f : fixtures())
    if (f.name == name) return f;
  throw std::runtime_error("no fixture " + name);
}

int count_ops(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op == op;
  return n;
}

// Runs a graph on a fixture's input; the output must match PyTorch's.
void expect_matches_reference(Graph& g, const Fixture& f) {
  const Tensor x = read_f32(kFixtures + f.name + ".input.f32", f.input_shape);
  const Tensor want = read_f32(kFixtures + f.name + ".output.f32", f.output_shape);
  Executor ex(g);
  const Tensor got = ex.forward({x});
  ASSERT_EQ(got.shape(), want.shape()) << f.name;
  EXPECT_LE(max_abs_diff(got, want), 1e-4) << f.name;
  // Batch 1 gives the first row: the batch axis is free even when the file fixed it.
  const Tensor got1 = ex.forward({x.slice0(0, 1).clone()}).clone();
  EXPECT_LE(max_abs_diff(got1, want.slice0(0, 1).clone()), 1e-4) << f.name << " at batch 1";
}

// ---------------------------------------------------------------------------
// Fixtures against PyTorch
// ---------------------------------------------------------------------------

class OnnxFixture : public testing::TestWithParam<std::string> {};

TEST_P(OnnxFixture, MatchesPyTorch) {
  const Fixture& f = fixture(GetParam());
  OnnxModel m = import_onnx_file(kFixtures + f.name + ".onnx");
  EXPECT_EQ(m.source["format"], "onnx");
  EXPECT_EQ(m.source["opset"], f.opset);
  EXPECT_EQ(m.source["producer"], "pytorch");
  EXPECT_EQ(m.graph.input_sample_shape(m.graph.inputs()[0]), Shape(f.input_shape.begin() + 1, f.input_shape.end()));
  EXPECT_EQ(count_ops(m.graph, "erf"), 0);
  expect_matches_reference(m.graph, f);
}

INSTANTIATE_TEST_SUITE_P(Onnx, OnnxFixture, testing::ValuesIn(fixture_names()),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// The fixture set covers every operator the issue lists, at opsets 11 and 17.
TEST(OnnxFixtures, CoverTheListedOperatorsAndOpsets) {
  std::set<std::string> seen;
  std::set<int> opsets;
  for (const Fixture& f : fixtures()) {
    seen.insert(f.ops.begin(), f.ops.end());
    opsets.insert(f.opset);
  }
  for (const char* op : {"Gemm", "MatMul", "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
                         "Erf", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Squeeze",
                         "Unsqueeze", "Add", "Sub", "Mul", "Div", "Concat", "Softmax", "LogSoftmax", "Identity",
                         "Dropout", "Constant", "Shape", "Gather"})
    EXPECT_TRUE(seen.count(op)) << op << " is in no fixture";
  EXPECT_TRUE(opsets.count(11) && opsets.count(17));
  for (const char* model : {"mlp", "cnn", "resnet"}) EXPECT_NO_THROW(fixture(std::string(model) + "_op17"));
}

TEST(OnnxRewrites, GeluPatternsBecomeGelu) {
  for (const char* name : {"gelu_mlp_op11", "gelu_mlp_op17", "gelu_mlp_edited_op14"}) {
    Graph g = import_onnx(kFixtures + name + ".onnx");
    // nn.GELU's (x * (1 + erf)) * 0.5 and the hand-written (0.5 * x) * (1 + erf).
    EXPECT_EQ(count_ops(g, "gelu"), 2) << name;
    EXPECT_EQ(count_ops(g, "mul") + count_ops(g, "div") + count_ops(g, "add"), 0) << name;
    EXPECT_EQ(count_ops(g, "linear"), 3) << name;
    EXPECT_EQ(count_ops(g, "dropout"), 0) << name;  // Identity and Dropout vanish
  }
}

TEST(OnnxRewrites, WeightsKeepTheirNamesAndRolesAndMatMulAddBecomesLinear) {
  Graph g = import_onnx(kFixtures + std::string("resnet_op17.onnx"));
  EXPECT_EQ(count_ops(g, "batchnorm"), 9);  // stem, 2 per block, 2 shortcuts
  ASSERT_TRUE(g.params().count("fc.weight"));
  EXPECT_EQ(g.params().at("fc.weight").value.shape(), (Shape{10, 16}));
  EXPECT_TRUE(g.params().at("fc.weight").trainable);
  EXPECT_TRUE(g.params().at("stem.weight").trainable);
  EXPECT_TRUE(g.params().at("bn.weight").trainable);
  EXPECT_FALSE(g.params().at("bn.running_mean").trainable);
  EXPECT_FALSE(g.params().at("bn.running_var").trainable);

  Graph s = import_onnx(kFixtures + std::string("shape_net_op17.onnx"));
  // proj (MatMul + Add on [N, 8, 6]) and fc (Gemm): two linear ops, both with a bias.
  EXPECT_EQ(count_ops(s, "linear"), 2);
  for (const Node& n : s.nodes()) {
    if (n.op == "linear") {
      EXPECT_EQ(n.inputs.size(), 3u);
    }
  }
  EXPECT_EQ(count_ops(s, "matmul"), 0);
  // With constant folding off, PyTorch writes proj's weight as Transpose(proj.weight): the name survives.
  ASSERT_TRUE(s.params().count("proj.weight"));
  EXPECT_EQ(s.params().at("proj.weight").value.shape(), (Shape{5, 6}));
  EXPECT_TRUE(s.params().at("proj.weight").trainable);
  EXPECT_GE(count_ops(s, "transpose"), 2);
  EXPECT_GE(count_ops(s, "sub"), 2);
  EXPECT_GE(count_ops(s, "div"), 2);
}

TEST(OnnxRewrites, PadBeforeAveragePoolBecomesItsPadding) {
  Graph g = import_onnx(kFixtures + std::string("pool_net_op14.onnx"));
  int included = 0, excluded = 0;
  for (const Node& n : g.nodes())
    if (n.op == "avgpool2d" && n.attrs.at("padding") == json({1, 1})) {
      included += n.attrs.at("count_include_pad") == 1;
      excluded += n.attrs.at("count_include_pad") == 0;
    }
  EXPECT_EQ(included, 1);
  EXPECT_EQ(excluded, 1);
}

// ---------------------------------------------------------------------------
// Bad files and unsupported models
// ---------------------------------------------------------------------------

// Imports `bytes` as `label`; expects an Error whose message holds every needle.
void expect_import_error(const std::string& bytes, const std::vector<std::string>& needles,
                         const std::string& label = "test.onnx") {
  try {
    import_onnx_bytes(bytes, label);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(label + ": ", 0), 0u) << "the message should start with the file: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// x [batch, 4] -> op -> y: the smallest model, edited by each test.
struct Tiny {
  onnx::ModelProto model;
  explicit Tiny(const std::string& op = "Relu", int opset = 17, const std::string& node_name = "act") {
    model.set_ir_version(8);
    model.set_producer_name("leanai-test");
    auto* o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    onnx::GraphProto* g = model.mutable_graph();
    g->set_name("tiny");
    add_value(g->add_input(), "x", {-1, 4});
    add_value(g->add_output(), "y", {-1, 4});
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(node_name);
    n->add_input("x");
    n->add_output("y");
  }
  static void add_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) {
      auto* dim = tt->mutable_shape()->add_dim();
      if (d < 0) dim->set_dim_param("batch");
      else dim->set_dim_value(d);
    }
  }
  onnx::NodeProto& node(int k = 0) { return *model.mutable_graph()->mutable_node(k); }
  onnx::TensorProto& add_initializer(const std::string& name, const Shape& shape, float fill = 0.5f) {
    onnx::TensorProto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    for (int64_t i = 0; i < shape_numel(shape); ++i) t->add_float_data(fill);
    return *t;
  }
  std::string bytes() const { return model.SerializeAsString(); }
};

void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

TEST(OnnxErrors, TheTinyModelItselfImportsAndRuns) {
  // The error cases below edit this model: it must be valid as it stands.
  Tiny t;
  OnnxModel m = import_onnx_bytes(t.bytes(), "tiny.onnx");
  Executor ex(m.graph);
  const Tensor y = ex.forward({Tensor::from_vector({1, 4}, {-1, 2, -3, 4})});
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 4), (std::vector<float>{0, 2, 0, 4}));
}

TEST(OnnxErrors, CorruptFile) {
  TempDir dir;
  const std::string path = dir.file("garbage.onnx");
  write_bytes(path, "this is not an ONNX model, just some text\n");
  try {
    import_onnx_file(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a readable ONNX model"), std::string::npos) << msg;
  }
  expect_import_error(std::string("\x08\x07\x12\x00\xff\xff\xff\xff\xff", 9), {"not a readable ONNX model"});
  expect_import_error("", {"empty"});
  // Parses as a protobuf (one unknown varint field), but holds no model.
  expect_import_error(std::string("\x08\x07", 2), {"no graph"});
}

TEST(OnnxErrors, TruncatedFile) {
  const std::string full = read_bytes(kFixtures + "cnn_op17.onnx");
  ASSERT_GT(full.size(), 1000u);
  for (double frac : {0.1, 0.5, 0.9, 0.999}) {
    SCOPED_TRACE(frac);
    const std::string cut = full.substr(0, static_cast<size_t>(full.size() * frac));
    expect_import_error(cut, {}, "cut.onnx");
  }
  expect_import_error(full.substr(0, full.size() / 2), {"not a readable ONNX model", "truncated"}, "cut.onnx");
}

TEST(OnnxErrors, MissingFileNamesIt) {
  try {
    import_onnx_file("/nonexistent/dir/model.onnx");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.onnx"), std::string::npos) << e.what();
  }
}

TEST(OnnxErrors, UnsupportedOperatorNamesOpAndNode) {
  expect_import_error(Tiny("Hardmax", 17, "my_hardmax").bytes(),
                      {"unsupported operator 'Hardmax'", "node 'my_hardmax'", "leanai imports", "Conv"});
  expect_import_error(Tiny("LSTM", 17, "rnn/lstm_1").bytes(), {"'LSTM'", "'rnn/lstm_1'"});
  Tiny other_domain("Relu");
  other_domain.node().set_domain("com.microsoft");
  expect_import_error(other_domain.bytes(), {"'com.microsoft.Relu'"});
}

TEST(OnnxErrors, OpsetOutsideTheSupportedRange) {
  expect_import_error(Tiny("Relu", 10).bytes(), {"opset 10", "11 to 17"});
  expect_import_error(Tiny("Relu", 18).bytes(), {"opset 18", "11 to 17"});
  Tiny none;
  none.model.clear_opset_import();
  expect_import_error(none.bytes(), {"no opset"});
}

TEST(OnnxErrors, InputsAndOutputs) {
  Tiny two_inputs;
  Tiny::add_value(two_inputs.model.mutable_graph()->add_input(), "z", {-1, 4});
  expect_import_error(two_inputs.bytes(), {"2 graph inputs", "'x'", "'z'", "exactly one input"});
  Tiny two_outputs;
  Tiny::add_value(two_outputs.model.mutable_graph()->add_output(), "x", {-1, 4});
  expect_import_error(two_outputs.bytes(), {"2 graph outputs", "exactly one output"});
  Tiny symbolic;
  symbolic.model.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_param("features");
  expect_import_error(symbolic.bytes(), {"input 'x'", "symbolic size 'features'", "axis 1"});
  Tiny int_input;
  int_input.model.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  expect_import_error(int_input.bytes(), {"input 'x'", "float32"});
  Tiny dangling;
  dangling.node().set_input(0, "nowhere");
  expect_import_error(dangling.bytes(), {"node 'act' (Relu)", "'nowhere'"});
}

TEST(OnnxErrors, ExternalDataAndCorruptTensors) {
  Tiny ext("Add");
  ext.node().add_input("bias");
  onnx::TensorProto& t = ext.add_initializer("bias", {4});
  t.clear_float_data();
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t.add_external_data();
  kv->set_key("location");
  kv->set_value("weights.bin");
  expect_import_error(ext.bytes(), {"initializer 'bias'", "external file"});

  Tiny short_data("Add");
  short_data.node().add_input("bias");
  short_data.add_initializer("bias", {4}).mutable_float_data()->RemoveLast();
  expect_import_error(short_data.bytes(), {"initializer 'bias'", "holds 3 values", "needs 4", "corrupt"});

  Tiny short_raw("Add");
  short_raw.node().add_input("bias");
  onnx::TensorProto& r = short_raw.add_initializer("bias", {4});
  r.clear_float_data();
  r.set_raw_data(std::string(12, '\0'));
  expect_import_error(short_raw.bytes(), {"initializer 'bias'", "12 bytes", "corrupt"});
}

TEST(OnnxErrors, UnsupportedAttributeValues) {
  // Conv with asymmetric pads.
  Tiny conv("Conv", 17, "conv_a");
  conv.model.mutable_graph()->clear_input();
  Tiny::add_value(conv.model.mutable_graph()->add_input(), "x", {-1, 2, 6, 6});
  conv.node().add_input("w");
  conv.add_initializer("w", {3, 2, 3, 3});
  set_ints(conv.node(), "pads", {0, 0, 1, 1});
  expect_import_error(conv.bytes(), {"node 'conv_a' (Conv)", "asymmetric pads [0, 0, 1, 1]"});

  Tiny gemm("Gemm", 17, "fc");
  gemm.node().add_input("w");
  gemm.add_initializer("w", {4, 4});
  set_int(gemm.node(), "transA", 1);
  expect_import_error(gemm.bytes(), {"node 'fc' (Gemm)", "transA=1"});

  Tiny pool("MaxPool", 17, "pool");
  pool.model.mutable_graph()->clear_input();
  Tiny::add_value(pool.model.mutable_graph()->add_input(), "x", {-1, 2, 6, 6});
  set_ints(pool.node(), "kernel_shape", {2, 2});
  set_int(pool.node(), "ceil_mode", 1);
  expect_import_error(pool.bytes(), {"node 'pool' (MaxPool)", "ceil_mode=1"});

  Tiny erf("Erf", 17, "lonely_erf");
  expect_import_error(erf.bytes(), {"node 'lonely_erf' (Erf)", "only inside GELU"});

  // Reshape(x, [-1]) folds the batch into the other axes.
  Tiny reshape("Reshape", 17, "flat_all");
  reshape.node().add_input("shape");
  onnx::TensorProto& s = *reshape.model.mutable_graph()->add_initializer();
  s.set_name("shape");
  s.set_data_type(onnx::TensorProto::INT64);
  s.add_dims(1);
  s.add_int64_data(-1);
  expect_import_error(reshape.bytes(), {"node 'flat_all' (Reshape)", "batch"});

  Tiny transpose("Transpose", 17, "swap");
  set_ints(transpose.node(), "perm", {1, 0});
  expect_import_error(transpose.bytes(), {"node 'swap' (Transpose)", "moves the batch axis"});

  Tiny bn_train("BatchNormalization", 17, "bn");
  for (const char* p : {"scale", "bias", "mean", "var"}) {
    bn_train.node().add_input(p);
    bn_train.add_initializer(p, {4}, 1.0f);
  }
  set_int(bn_train.node(), "training_mode", 1);
  expect_import_error(bn_train.bytes(), {"node 'bn' (BatchNormalization)", "training mode"});
}

TEST(OnnxErrors, WrongInputShapeAtRunTime) {
  Graph g = import_onnx(kFixtures + std::string("cnn_op17.onnx"));
  Executor ex(g);
  try {
    ex.forward({Tensor::zeros({2, 1, 28, 27})});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("input 'input' has shape [2, 1, 28, 27]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected [batch, 1, 28, 28]"), std::string::npos) << msg;
  }
  EXPECT_THROW(ex.forward({Tensor::zeros({2, 784})}), Error);
}

// ---------------------------------------------------------------------------
// The CLI: leanai import, then the model file
// ---------------------------------------------------------------------------

struct CliResult {
  int rc = -1;
  std::string out, err;
};

CliResult run_cli(const std::vector<std::string>& args, const TempDir& dir) {
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  std::string cmd = "OMP_WAIT_POLICY=passive ";
  cmd += quote(LEANAI_CLI_PATH);
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quote(a);
  }
  cmd += " >";
  cmd += quote(dir.file("stdout.txt"));
  cmd += " 2>";
  cmd += quote(dir.file("stderr.txt"));
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = read_bytes(dir.file("stdout.txt"));
  r.err = read_bytes(dir.file("stderr.txt"));
  return r;
}

TEST(OnnxCli, ImportRoundTripsThroughTheModelFile) {
  TempDir dir;
  const Fixture& f = fixture("resnet_op14");
  const std::string out = dir.file("resnet.leanai");
  CliResult r = run_cli({"import", kFixtures + f.name + ".onnx", "-o", out, "--json"}, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["opset"], 14);
  EXPECT_EQ(summary["input_shape"], json({1, 28, 28}));
  EXPECT_EQ(summary["output_shape"], json({10}));
  EXPECT_GT(summary["parameters"].get<int64_t>(), 0);

  LoadedModel m = load_model(out);
  EXPECT_EQ(m.info["source"]["format"], "onnx");
  EXPECT_EQ(m.info["source"]["file"], "resnet_op14.onnx");
  EXPECT_EQ(m.info["source"]["opset"], 14);
  EXPECT_EQ(m.info["task"], "unspecified");
  EXPECT_EQ(m.info["num_outputs"], 10);
  expect_matches_reference(m.graph, f);

  // The text summary is one line; info and predict read the imported file.
  r = run_cli({"import", kFixtures + f.name + ".onnx", "-o", out}, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("input [batch, 1, 28, 28] -> output [batch, 10]"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  r = run_cli({"info", out}, dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("batchnorm"), std::string::npos) << r.out;
  r = run_cli({"predict", out, "--input", kFixtures + f.name + ".input.f32", "--json"}, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u);
  const Tensor want = read_f32(kFixtures + f.name + ".output.f32", f.output_shape);
  ASSERT_EQ(rows[1]["prediction"].size(), 10u);
  for (int k = 0; k < 10; ++k)
    EXPECT_NEAR(rows[1]["prediction"][k].get<double>(), want.data<float>()[10 + k], 1e-4);
}

TEST(OnnxCli, TaskClassificationMakesPredictPrintProbabilities) {
  TempDir dir;
  const std::string out = dir.file("cnn.leanai");
  ASSERT_EQ(run_cli({"import", kFixtures + "cnn_op11.onnx", "-o", out, "--task", "classification"}, dir).rc, 0);
  CliResult r = run_cli({"predict", out, "--input", kFixtures + "cnn_op11.input.f32", "--json"}, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u);
  double sum = 0;
  for (const json& p : rows[0]["probabilities"]) sum += p.get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

TEST(OnnxCli, ErrorsAreOneLineAndWriteNothing) {
  TempDir dir;
  write_bytes(dir.file("bad.onnx"), "definitely not protobuf");
  write_bytes(dir.file("hardmax.onnx"), Tiny("Hardmax", 17, "hm").bytes());
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {{"import", dir.file("bad.onnx"), "-o", dir.file("out.leanai")}, {"bad.onnx", "not a readable ONNX model"}},
      {{"import", dir.file("hardmax.onnx"), "-o", dir.file("out.leanai")}, {"hardmax.onnx", "'Hardmax'", "'hm'"}},
      {{"import", dir.file("missing.onnx"), "-o", dir.file("out.leanai")}, {"missing.onnx"}},
  };
  for (const Case& c : cases) {
    CliResult r = run_cli(c.args, dir);
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("leanai: error: ", 0), 0u) << r.err;
    for (const auto& n : c.needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in " << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.leanai")));
  }
  // An imported model takes raw float32 input only: IDX images would be normalized by a guess.
  ASSERT_EQ(run_cli({"import", kFixtures + "mlp_op17.onnx", "-o", dir.file("mlp.leanai")}, dir).rc, 0);
  write_bytes(dir.file("images-idx3-ubyte"), std::string("\0\0\x08\x03\0\0\0\x01\0\0\0\x1c\0\0\0\x1c", 16) + std::string(784, '\0'));
  CliResult r = run_cli({"predict", dir.file("mlp.leanai"), "--input", dir.file("images-idx3-ubyte")}, dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("imported from ONNX"), std::string::npos) << r.err;
}

}  // namespace
