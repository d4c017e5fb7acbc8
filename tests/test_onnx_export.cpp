// ONNX export: float graphs round-trip through leanai's own importer with the
// same outputs (1e-5) on random input: an MLP with BN and GELU, the cnn-bn
// preset, a residual CNN, and their inference-optimized forms (post-ops,
// conv2d_fused). Quantized graphs, built by hand per quant/precision.h, are
// checked for structure: QDQ node pairs, int8 weights with per-axis scales,
// int32 biases, DynamicQuantizeLinear, int4 weights dequantized to f32.
// (The q-ops' kernels live on another branch; these tests never run them.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <onnx/onnx_pb.h>

#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/op.h"
#include "leanai/graph/passes/fuse_conv_blocks.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/io/onnx_export.h"
#include "leanai/io/onnx_import.h"
#include "leanai/nn/models.h"
#include "temp_dir.h"

using namespace leanai;
using namespace leanai::test_support;

namespace {

onnx::ModelProto parse(const OnnxExport& e) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(e.bytes));
  return m;
}

// import(export(g)) computes what g computes, at batch 5.
void expect_round_trip(Graph g, const std::string& label) {
  SCOPED_TRACE(label);
  const OnnxExport e = build_onnx_export(g, {});
  Graph back = import_onnx_bytes(e.bytes, label).graph;
  Shape s = g.input_sample_shape(g.inputs()[0]);
  s.insert(s.begin(), 5);
  const Tensor x = random_tensor(s, 7);
  Executor a(g), b(back);
  const Tensor want = a.forward({x}).clone();
  const Tensor got = b.forward({x}).clone();
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LE(max_abs_diff(got, want), 1e-5);
  const onnx::ModelProto m = parse(e);
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_EQ(m.graph().output(0).name(), "output");
  EXPECT_EQ(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "N");
}

TEST(OnnxExport, FloatGraphsRoundTripThroughTheImporter) {
  expect_round_trip(activation_mlp(), "mlp with batch-norm, gelu, leaky_relu, sigmoid");
  expect_round_trip(build_preset("cnn-bn", {1, 28, 28}, 10, 3), "cnn-bn");
  expect_round_trip(build_preset("cnn", {1, 28, 28}, 10, 4), "cnn");
  expect_round_trip(residual_net(), "residual cnn");
}

TEST(OnnxExport, FusedGraphsExpandBackIntoSeparateNodes) {
  const Graph fused = optimize_for_inference(residual_net());
  ASSERT_GT(count_op(fused, "add"), -1);
  bool has_post_ops = false;
  for (const Node& n : fused.nodes()) has_post_ops |= n.attrs.contains("post_ops");
  ASSERT_TRUE(has_post_ops) << "the pass no longer fuses; this test needs a graph with post-ops";
  expect_round_trip(fused, "residual cnn with post-ops");
  const onnx::ModelProto m = parse(build_onnx_export(fused, {}));
  int adds = 0;
  for (const auto& n : m.graph().node()) adds += n.op_type() == "Add";
  EXPECT_GE(adds, 2) << "each residual add is its own node again";

  const Graph blocks = fuse_conv_blocks(build_preset("cnn-bn", {1, 28, 28}, 10, 5));
  ASSERT_GT(count_op(blocks, "conv2d_fused"), 0);
  expect_round_trip(blocks, "cnn-bn with conv2d_fused");
  expect_round_trip(optimize_for_inference(activation_mlp()), "mlp with gelu post-ops");
}

TEST(OnnxExport, SixteenBitWeightsBecomeF32Initializers) {
  Graph g = activation_mlp();
  Graph rounded = activation_mlp();
  for (const char* name : {"fc1.weight", "fc2.weight"}) {
    g.param(name).value = g.param(name).value.to(DType::f16);
    rounded.param(name).value = g.param(name).value.to(DType::f32);
  }
  g.param("fc3.weight").value = g.param("fc3.weight").value.to(DType::bf16);
  rounded.param("fc3.weight").value = g.param("fc3.weight").value.to(DType::f32);
  const OnnxExport e = build_onnx_export(g, {});
  const onnx::ModelProto m = parse(e);
  for (const auto& t : m.graph().initializer()) EXPECT_EQ(t.data_type(), onnx::TensorProto::FLOAT) << t.name();
  // The exported values are exactly the stored 16-bit ones.
  Graph back = import_onnx_bytes(e.bytes, "f16").graph;
  const Tensor x = random_tensor({3, 20}, 9);
  Executor a(rounded), b(back);
  const Tensor want = a.forward({x}).clone();
  EXPECT_LE(max_abs_diff(b.forward({x}), want), 1e-6);
}

TEST(OnnxExport, UnsupportedOpsNameTheNodeAndWriteNothing) {
  Graph g;
  const int x = g.add_input("input", {8});
  const int y = g.add("layernorm", {x, g.add_param("ln.weight", Tensor::full({8}, 1.0f)), g.add_param("ln.bias", Tensor::zeros({8}))},
                      {}, "ln");
  g.set_output(y);
  TempDir dir;
  expect_error([&] { export_onnx(g, dir.file("m.onnx"), {}); }, {"'ln'", "layernorm", "cannot export"});
  EXPECT_TRUE(dir.listing().empty());
  ExportOptions bad;
  bad.opset = 11;
  expect_error([&] { build_onnx_export(activation_mlp(), bad); }, {"opsets 13 to 17", "11"});
}

TEST(OnnxExport, WritesAtomicallyAndReplacesTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("m.onnx");
  export_onnx(residual_net(), path, {});
  export_onnx(activation_mlp(), path, {});
  EXPECT_EQ(dir.listing(), std::set<std::string>{"m.onnx"});
  EXPECT_EQ(import_onnx_file(path).graph.input_sample_shape(0), Shape{20});
}

// ---------------------------------------------------------------------------
// Quantized graphs (structure only)

// The q-ops' kernels are written on another branch; until they land, stubs
// let Graph::add accept the nodes. Export never runs a kernel.
void register_q_op_stubs() {
  auto stub = [](const std::string& name, int min, int max) {
    if (has_op(name)) return;
    register_op({name, min, max, [](int) { return false; },
                 [name](const Node&) -> std::unique_ptr<OpKernel> { throw Error(name + ": no kernel on this branch"); }});
  };
  stub("qlinear", 4, 6);
  stub("qconv2d", 4, 6);
  stub("qlinear_w4", 4, 4);
}

Tensor int8_weights(const Shape& s, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::i8);
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int8_t>()[i] = static_cast<int8_t>(static_cast<int>(rng.normal() * 40) % 127);
  return t;
}

// Graph::add_param takes f32 only until the quantized-model branch lands;
// the stored tensor is swapped afterwards, as a loaded model file would hold it.
int typed_param(Graph& g, const std::string& name, const Tensor& value) {
  const int id = g.add_param(name, Tensor::zeros(value.shape()));
  g.param(name).value = value;
  return id;
}

struct QGraph {
  Graph g;
  Tensor packed, w4_scale;  // qlinear_w4's weight, to check the dequantized export
};

// input [1, 8, 8] -> qconv2d(4, static u8, relu) -> maxpool -> flatten
//   -> two qlinear reading it with the same static s8 params (one Q/DQ pair), added
//   -> qlinear (dynamic u8) -> qlinear (dynamic s8) -> qlinear_w4 (block 32) -> output [10]
QGraph q_graph() {
  register_q_op_stubs();
  QGraph q;
  Graph& g = q.g;
  auto scales = [&](int64_t n, float v) { return g.add_param("s" + std::to_string(g.nodes().size()), Tensor::full({n}, v)); };
  auto bias = [&](int64_t n) { return g.add_param("b" + std::to_string(g.nodes().size()), random_tensor({n}, n, 0.1f)); };
  const int x = g.add_input("input", {1, 8, 8});
  const json static_u8 = {{"dtype", "u8"}, {"scale", 0.02}, {"zero_point", 128}};
  const json static_s8 = {{"dtype", "s8"}, {"scale", 0.05}, {"zero_point", 0}};
  int y = g.add("qconv2d", {x, typed_param(g, "conv.wq", int8_weights({4, 1, 3, 3}, 1)), g.add_param("conv.ws", Tensor::full({4}, 0.01f)), bias(4)},
                {{"input", static_u8}, {"padding", {1, 1}}, {"post_ops", {{{"op", "relu"}}}}}, "conv");
  y = g.add("flatten", {g.add("maxpool2d", {y}, {{"kernel", {2, 2}}})});
  const int a = g.add("qlinear", {y, typed_param(g, "fc1a.wq", int8_weights({32, 64}, 2)), scales(32, 0.01f), bias(32)}, {{"input", static_s8}}, "fc1a");
  const int b = g.add("qlinear", {y, typed_param(g, "fc1b.wq", int8_weights({32, 64}, 3)), scales(32, 0.02f), bias(32), a},
                      {{"input", static_s8}, {"post_ops", {{{"op", "add"}}, {{"op", "relu"}}}}}, "fc1b");
  y = g.add("qlinear", {b, typed_param(g, "fc2.wq", int8_weights({32, 32}, 4)), scales(32, 0.01f), bias(32)},
            {{"input", {{"dtype", "u8"}, {"dynamic", true}}}}, "fc2");
  y = g.add("qlinear", {y, typed_param(g, "fc3.wq", int8_weights({32, 32}, 5)), scales(32, 0.01f), bias(32)},
            {{"input", {{"dtype", "s8"}, {"dynamic", true}}}}, "fc3");
  q.packed = Tensor::empty({10, 16}, DType::u8);
  for (int64_t i = 0; i < q.packed.numel(); ++i) q.packed.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 + 11);
  q.w4_scale = random_tensor({10, 1}, 6, 0.1f);
  y = g.add("qlinear_w4", {y, typed_param(g, "fc4.wp", q.packed), g.add_param("fc4.ws", q.w4_scale), bias(10)},
            {{"block", 32}, {"in", 32}}, "fc4");
  g.set_output(y);
  return q;
}

TEST(OnnxExportQuantized, QdqStructurePerTheContract) {
  const QGraph q = q_graph();
  const OnnxExport e = build_onnx_export(q.g, {});
  const onnx::ModelProto m = parse(e);
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : m.graph().initializer()) inits[t.name()] = &t;
  std::map<std::string, const onnx::NodeProto*> producer;
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output()) producer[o] = &n;

  // One Q/DQ pair for the conv's input, one shared by fc1a and fc1b; fc2 (dynamic u8)
  // takes ONNX Runtime's MatMulInteger pattern; fc3 (dynamic s8) reads f32.
  EXPECT_EQ(e.op_counts.at("QuantizeLinear"), 2);
  EXPECT_EQ(e.op_counts.at("DynamicQuantizeLinear"), 1);
  EXPECT_EQ(e.op_counts.at("DequantizeLinear"), 2 + 4 + 3);  // activations + int8 weights + int32 biases
  EXPECT_EQ(e.op_counts.at("Conv"), 1);
  EXPECT_EQ(e.op_counts.at("Gemm"), 4);
  EXPECT_EQ(e.op_counts.at("MatMulInteger"), 1);
  EXPECT_EQ(e.op_counts.at("Cast"), 1);
  EXPECT_EQ(e.op_counts.at("Mul"), 2);
  EXPECT_EQ(e.op_counts.at("Relu"), 2);
  EXPECT_EQ(e.op_counts.at("Add"), 2);  // fc1b's residual, fc2's bias

  int checked_weights = 0, checked_biases = 0;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == "QuantizeLinear") {
      const onnx::TensorProto* zp = inits.at(n.input(2));
      const bool conv_input = n.input(0) == "input";
      EXPECT_EQ(zp->data_type(), conv_input ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8);
      if (conv_input) {
        EXPECT_EQ(static_cast<uint8_t>(zp->raw_data()[0]), 128);
      }
      float s;
      std::memcpy(&s, inits.at(n.input(1))->raw_data().data(), 4);
      EXPECT_FLOAT_EQ(s, conv_input ? 0.02f : 0.05f);
    }
    if (n.op_type() == "Gemm" || n.op_type() == "Conv") {
      // The weight reaches the float op through DequantizeLinear of an int8
      // initializer with one scale per output channel (axis 0), except fc4 (int4 -> f32).
      const std::string& w = n.input(1);
      if (!producer.count(w)) {
        EXPECT_EQ(inits.at(w)->data_type(), onnx::TensorProto::FLOAT);
        continue;
      }
      const onnx::NodeProto& dq = *producer.at(w);
      ASSERT_EQ(dq.op_type(), "DequantizeLinear");
      const onnx::TensorProto& wq = *inits.at(dq.input(0));
      EXPECT_EQ(wq.data_type(), onnx::TensorProto::INT8);
      EXPECT_EQ(inits.at(dq.input(1))->dims_size(), 1);
      EXPECT_EQ(inits.at(dq.input(1))->dims(0), wq.dims(0));
      EXPECT_EQ(inits.at(dq.input(2))->data_type(), onnx::TensorProto::INT8);
      ASSERT_EQ(dq.attribute_size(), 1);
      EXPECT_EQ(dq.attribute(0).name(), "axis");
      EXPECT_EQ(dq.attribute(0).i(), 0);
      ++checked_weights;
      // Static inputs: the bias is int32 at scale s * w_scale[o].
      if (producer.count(n.input(2)) && producer.at(n.input(2))->op_type() == "DequantizeLinear") {
        const onnx::NodeProto& bdq = *producer.at(n.input(2));
        EXPECT_EQ(inits.at(bdq.input(0))->data_type(), onnx::TensorProto::INT32);
        ++checked_biases;
      }
      if (n.op_type() == "Gemm") {
        EXPECT_EQ(n.attribute(0).name(), "transB");
      }
    }
  }
  EXPECT_EQ(checked_weights, 4);
  EXPECT_EQ(checked_biases, 3);
}

TEST(OnnxExportQuantized, StaticBiasIsRoundedAtTheProductOfScales) {
  const QGraph q = q_graph();
  const onnx::ModelProto m = parse(build_onnx_export(q.g, {}));
  const Tensor& b = q.g.params().at("b3").value;  // the conv's bias (node 3)
  for (const auto& t : m.graph().initializer()) {
    if (t.name() != "b3.quantized") continue;
    ASSERT_EQ(t.dims(0), 4);
    for (int o = 0; o < 4; ++o) {
      int32_t v;
      std::memcpy(&v, t.raw_data().data() + 4 * o, 4);
      EXPECT_EQ(v, static_cast<int32_t>(std::nearbyint(b.data<float>()[o] / (0.02f * 0.01f))));
    }
    return;
  }
  ADD_FAILURE() << "no quantized bias for the conv";
}

TEST(OnnxExportQuantized, Int4WeightsAreDequantizedToF32) {
  const QGraph q = q_graph();
  const onnx::ModelProto m = parse(build_onnx_export(q.g, {}));
  for (const auto& t : m.graph().initializer()) {
    if (t.name() != "fc4.wp.dequantized") continue;
    ASSERT_EQ(t.data_type(), onnx::TensorProto::FLOAT);
    ASSERT_EQ(t.dims_size(), 2);
    EXPECT_EQ(t.dims(0), 10);
    EXPECT_EQ(t.dims(1), 32);
    std::vector<float> w(320);
    std::memcpy(w.data(), t.raw_data().data(), 320 * 4);
    for (int o = 0; o < 10; ++o)
      for (int k = 0; k < 32; ++k) {
        const uint8_t byte = q.packed.data<uint8_t>()[o * 16 + k / 2];
        const int nib = k % 2 == 0 ? byte & 0xf : byte >> 4;
        EXPECT_EQ(w[o * 32 + k], static_cast<float>(nib >= 8 ? nib - 16 : nib) * q.w4_scale.data<float>()[o]);
      }
    return;
  }
  ADD_FAILURE() << "no dequantized int4 weight";
}

TEST(OnnxExportQuantized, DynamicU8LinearTakesTheMatMulIntegerPattern) {
  const QGraph q = q_graph();
  const onnx::ModelProto m = parse(build_onnx_export(q.g, {}));
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : m.graph().initializer()) inits[t.name()] = &t;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "MatMulInteger") continue;
    // x_u8 and its zero point from DynamicQuantizeLinear; Wq transposed to [in, out], zero point 0.
    const onnx::TensorProto& wt = *inits.at(n.input(1));
    EXPECT_EQ(wt.data_type(), onnx::TensorProto::INT8);
    ASSERT_EQ(wt.dims_size(), 2);
    EXPECT_EQ(wt.dims(0), 32);
    EXPECT_EQ(wt.dims(1), 32);
    const Tensor& wq = q.g.params().at("fc2.wq").value;
    for (int o = 0; o < 32; ++o)
      for (int k = 0; k < 32; ++k) EXPECT_EQ(static_cast<int8_t>(wt.raw_data()[k * 32 + o]), wq.data<int8_t>()[o * 32 + k]);
    EXPECT_EQ(inits.at(n.input(3))->data_type(), onnx::TensorProto::INT8);
    return;
  }
  ADD_FAILURE() << "no MatMulInteger";
}

// Dynamic s8 inputs export weight-only (f32 input, DequantizeLinear weights) and
// int4 weights as f32: leanai's importer folds those DQs, so such a graph reads
// back as the float graph of its dequantized weights.
TEST(OnnxExportQuantized, WeightOnlyExportsImportAsTheirDequantizedFloatGraph) {
  register_q_op_stubs();
  Graph g, want;
  const Tensor wq = int8_weights({32, 20}, 8), ws = random_tensor({32}, 9, 0.01f), b1 = random_tensor({32}, 10, 0.1f);
  Tensor packed = Tensor::empty({4, 16}, DType::u8);
  for (int64_t i = 0; i < packed.numel(); ++i) packed.data<uint8_t>()[i] = static_cast<uint8_t>(i * 53 + 7);
  const Tensor w4s = random_tensor({4, 1}, 11, 0.1f), b2 = random_tensor({4}, 12, 0.1f);
  int x = g.add_input("input", {20});
  int y = g.add("qlinear", {x, typed_param(g, "fc1.wq", wq), g.add_param("fc1.ws", ws), g.add_param("fc1.b", b1)},
                {{"input", {{"dtype", "s8"}, {"dynamic", true}}}, {"post_ops", {{{"op", "relu"}}}}}, "fc1");
  g.set_output(g.add("qlinear_w4", {y, typed_param(g, "fc2.wp", packed), g.add_param("fc2.ws", w4s), g.add_param("fc2.b", b2)},
                     {{"block", 32}, {"in", 32}}, "fc2"));

  Tensor w1 = Tensor::empty({32, 20}), w2 = Tensor::empty({4, 32});
  for (int64_t o = 0; o < 32; ++o)
    for (int64_t k = 0; k < 20; ++k) w1.data<float>()[o * 20 + k] = wq.data<int8_t>()[o * 20 + k] * ws.data<float>()[o];
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t k = 0; k < 32; ++k) {
      const uint8_t byte = packed.data<uint8_t>()[o * 16 + k / 2];
      const int nib = k % 2 == 0 ? byte & 0xf : byte >> 4;
      w2.data<float>()[o * 32 + k] = static_cast<float>(nib >= 8 ? nib - 16 : nib) * w4s.data<float>()[o];
    }
  x = want.add_input("input", {20});
  y = want.add("relu", {want.add("linear", {x, want.add_param("w1", w1), want.add_param("b1", b1)})});
  want.set_output(want.add("linear", {y, want.add_param("w2", w2), want.add_param("b2", b2)}));

  Graph back = import_onnx_bytes(build_onnx_export(g, {}).bytes, "weight-only").graph;
  const Tensor in = random_tensor({6, 20}, 13);
  Executor a(want), b(back);
  const Tensor expected = a.forward({in}).clone();
  EXPECT_LE(max_abs_diff(b.forward({in}), expected), 1e-5);
  // int8 activations (QuantizeLinear on the model's data) have no float meaning: a clear error.
  expect_error([&] { import_onnx_bytes(build_onnx_export(q_graph().g, {}).bytes, "static.onnx"); },
               {"static.onnx", "unsupported operator 'QuantizeLinear'"});
}

TEST(OnnxExportQuantized, BadQuantizationAttributesAreErrors) {
  register_q_op_stubs();
  auto qlinear = [](int64_t zero_point, const Tensor& w) {
    Graph g;
    const int x = g.add_input("input", {4});
    g.set_output(g.add("qlinear", {x, typed_param(g, "w", w), g.add_param("s", Tensor::full({2}, 0.1f)), g.add_param("b", Tensor::zeros({2}))},
                       {{"input", {{"dtype", "u8"}, {"scale", 0.1}, {"zero_point", zero_point}}}}, "fc"));
    return g;
  };
  expect_error([&] { build_onnx_export(qlinear(300, int8_weights({2, 4}, 1)), {}); }, {"'fc'", "zero_point 300", "u8"});
  expect_error([&] { build_onnx_export(qlinear(3, Tensor::zeros({2, 4})), {}); }, {"'fc'", "I8"});
}

}  // namespace
