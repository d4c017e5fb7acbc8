// The quantized ops' reference kernels (qlinear, qconv2d; linear / conv2d with
// bf16 compute or 16-bit weights) and the quantize pass. The reference kernels
// must equal the float op on dequantized values (integer accumulation is exact,
// so only f32 rounding of the float op separates them); the pass must keep a
// model's outputs within a few quantization steps and its argmax.
#include <gtest/gtest.h>

#include <cmath>

#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/io/model_file.h"
#include "leanai/quant/input_quant.h"
#include "leanai/quant/quantize_graph.h"
#include "quant_fixtures.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using namespace test_support;

// Random i8 weights in [-127, 127] and positive per-channel scales.
QuantizedWeights random_qweights(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  QuantizedWeights q{Tensor::empty(s, DType::i8), Tensor::empty({s[0]})};
  for (int64_t i = 0; i < q.q.numel(); ++i) q.q.data<int8_t>()[i] = static_cast<int8_t>(std::lround(rng.uniform() * 254.0 - 127.0));
  for (int64_t o = 0; o < s[0]; ++o) q.scales.data<float>()[o] = 0.002f + 0.01f * static_cast<float>(rng.uniform());
  return q;
}

Tensor dequantized_weights(const QuantizedWeights& q) {
  Tensor w = q.q.to(DType::f32);
  const int64_t per = w.numel() / w.dim(0);
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= q.scales.data<float>()[i / per];
  return w;
}

Tensor dequantized_input(const Tensor& x, const QuantParams& p) {
  Tensor d = x.clone();
  for (int64_t i = 0; i < d.numel(); ++i) d.data<float>()[i] = dequantize_value(quantize_value(x.data<float>()[i], p), p);
  return d;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(double(t.data<float>()[i])));
  return m;
}

// One layer graph: `op` (qlinear / qconv2d with Wq, w_scale, b; or the float op with W, b).
Graph layer_graph(const std::string& op, const Shape& sample, const std::vector<Tensor>& params, json attrs) {
  Graph g;
  std::vector<int> in = {g.add_input("x", sample)};
  const char* names[] = {"l.weight", "l.w_scale", "l.bias"};
  for (size_t i = 0; i < params.size(); ++i) in.push_back(g.add_param(names[params.size() == 2 && i == 1 ? 2 : i], params[i], false));
  g.set_output(g.add(op, in, attrs, "l"));
  return g;
}

struct QCase {
  std::string name;
  bool conv;
  DType dtype;
  bool dynamic;
};

class QuantizedReference : public ::testing::TestWithParam<QCase> {};

TEST_P(QuantizedReference, EqualsTheFloatOpOnDequantizedValues) {
  const QCase c = GetParam();
  const Shape sample = c.conv ? Shape{4, 7, 6} : Shape{37};
  const Shape wshape = c.conv ? Shape{6, 2, 3, 3} : Shape{5, 37};  // conv: 2 groups
  Shape xs = {3};
  for (int64_t d : sample) xs.push_back(d);
  Tensor x = random_tensor(xs, 11);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 0.5f;  // asymmetric: the u8 zero point is not trivial
  const QuantizedWeights q = random_qweights(wshape, 12);
  const Tensor bias = random_tensor({wshape[0]}, 13, 0.1f);
  // Static params deliberately narrower than the data, so some inputs saturate.
  const QuantParams p = params_for_range(-1.2f, 2.0f, c.dtype);
  json geometry = c.conv ? json{{"stride", {2, 1}}, {"padding", {1, 2}}, {"dilation", {1, 2}}, {"groups", 2}} : json::object();
  json qattrs = geometry;
  qattrs["input"] = c.dynamic ? dynamic_input_attr(c.dtype) : input_quant_attr(p);
  const Tensor got = run_graph(layer_graph(c.conv ? "qconv2d" : "qlinear", sample, {q.q, q.scales, bias}, qattrs), x);

  const float* xp = x.data<float>();
  const QuantParams used = c.dynamic ? dynamic_params(xp, x.numel(), c.dtype) : p;
  const Tensor want = run_graph(layer_graph(c.conv ? "conv2d" : "linear", sample, {dequantized_weights(q), bias}, geometry),
                                dequantized_input(x, used));
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LT(max_abs_diff(got, want), 1e-5 * (1.0 + max_abs(want)));
  EXPECT_GT(max_abs(want), 0.1);  // a non-trivial output
}

INSTANTIATE_TEST_SUITE_P(Cases, QuantizedReference,
                         ::testing::Values(QCase{"linear_u8", false, DType::u8, false}, QCase{"linear_s8", false, DType::i8, false},
                                           QCase{"linear_u8_dynamic", false, DType::u8, true},
                                           QCase{"linear_s8_dynamic", false, DType::i8, true},
                                           QCase{"conv_u8", true, DType::u8, false}, QCase{"conv_s8", true, DType::i8, false},
                                           QCase{"conv_u8_dynamic", true, DType::u8, true},
                                           QCase{"conv_s8_dynamic", true, DType::i8, true}),
                         [](const auto& info) { return info.param.name; });

Tensor qlinear_1x(const std::vector<float>& x, const std::vector<int8_t>& wq, float w_scale, float b, json input) {
  const int64_t k = static_cast<int64_t>(x.size());
  Tensor w = Tensor::empty({1, k}, DType::i8);
  std::copy(wq.begin(), wq.end(), w.data<int8_t>());
  return run_graph(layer_graph("qlinear", {k}, {w, Tensor::full({1}, w_scale), Tensor::full({1}, b)}, {{"input", input}}),
                   Tensor::from_vector({1, k}, x));
}

TEST(QuantizedReference, ZeroPointByHand) {
  // scale 0.5, z 3: xq = 3, 5, 2 -> centered 0, 2, -1; acc = 0*1 + 2*2 - 1*3 = 1.
  const Tensor y = qlinear_1x({0.0f, 1.0f, -0.5f}, {1, 2, 3}, 0.1f, 0.2f, {{"dtype", "u8"}, {"scale", 0.5}, {"zero_point", 3}});
  EXPECT_NEAR(y.data<float>()[0], 1 * 0.5f * 0.1f + 0.2f, 1e-6);
}

TEST(QuantizedReference, SaturatesAtTheTypeBounds) {
  // u8, z 0, scale 0.01: 10 -> 255 (not 1000), -1 -> 0.
  Tensor y = qlinear_1x({10.0f, -1.0f}, {1, 1}, 1.0f, 0.0f, {{"dtype", "u8"}, {"scale", 0.01}, {"zero_point", 0}});
  EXPECT_NEAR(y.data<float>()[0], 255 * 0.01f, 1e-5);
  // s8: -5 -> -128 (the full type range, not the weights' symmetric -127), 5 -> 127.
  y = qlinear_1x({-5.0f, 5.0f}, {1, 2}, 1.0f, 0.0f, {{"dtype", "s8"}, {"scale", 0.01}, {"zero_point", 0}});
  EXPECT_NEAR(y.data<float>()[0], (-128 + 2 * 127) * 0.01f, 1e-5);
  // Extreme weights and inputs: 255 * 127 * 64 overflows 16 bits many times; int32 holds it.
  std::vector<float> x(64, 2.55f);
  std::vector<int8_t> w(64, 127);
  y = qlinear_1x(x, w, 1.0f, 0.0f, {{"dtype", "u8"}, {"scale", 0.01}, {"zero_point", 0}});
  EXPECT_NEAR(y.data<float>()[0], 255.0 * 127 * 64 * 0.01, 1e-1);
}

TEST(QuantizedReference, DynamicParamsFollowTheBatch) {
  // u8 over [-1, 3]: scale 4/255, z = round(255/4) = 64; -1 maps to 0 and 3 to 255.
  const QuantParams p = dynamic_params(std::vector<float>{-1.0f, 0.5f, 3.0f}.data(), 3, DType::u8);
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point, 64);
  // A batch of positives still includes 0; s8 is symmetric.
  const QuantParams s = dynamic_params(std::vector<float>{0.5f, 2.54f}.data(), 2, DType::i8);
  EXPECT_FLOAT_EQ(s.scale, 2.54f / 127.0f);
  EXPECT_EQ(s.zero_point, 0);
  // Dynamic qlinear equals static qlinear with those params.
  const std::vector<float> x = {-1.0f, 0.5f, 3.0f};
  const Tensor dyn = qlinear_1x(x, {5, -7, 9}, 0.1f, 0.0f, dynamic_input_attr(DType::u8));
  const Tensor fixed = qlinear_1x(x, {5, -7, 9}, 0.1f, 0.0f, input_quant_attr(dynamic_params(x.data(), 3, DType::u8)));
  EXPECT_FLOAT_EQ(dyn.data<float>()[0], fixed.data<float>()[0]);
  expect_error([] { dynamic_params(std::vector<float>{1.0f, NAN}.data(), 2, DType::u8); }, {"NaN"});
}

TEST(QuantizedReference, RefusesTrainingAndWrongDtypes) {
  const QuantizedWeights q = random_qweights({3, 4}, 1);
  Graph g = layer_graph("qlinear", {4}, {q.q, q.scales, Tensor::zeros({3})}, {{"input", dynamic_input_attr(DType::u8)}});
  Executor ex(g);
  ex.set_training(true);
  expect_error([&] { ex.forward({random_tensor({2, 4}, 1)}); }, {"qlinear", "inference-only"});
  Graph f = layer_graph("qlinear", {4}, {dequantized_weights(q), q.scales, Tensor::zeros({3})},
                        {{"input", dynamic_input_attr(DType::u8)}});
  expect_error([&] { run_graph(f, random_tensor({2, 4}, 1)); }, {"input 1 is F32", "I8"});
  Graph bad = layer_graph("qlinear", {4}, {q.q, q.scales, Tensor::zeros({3})}, {{"input", {{"dtype", "u8"}, {"scale", 0.1}}}});
  expect_error([&] { run_graph(bad, random_tensor({2, 4}, 1)); }, {"zero_point"});
}

// ---- bf16 compute and 16-bit weight storage ----

Tensor bf16_rounded(const Tensor& t) {
  Tensor r = t.clone();
  for (int64_t i = 0; i < r.numel(); ++i) r.data<float>()[i] = bf16_to_f32(f32_to_bf16(r.data<float>()[i]));
  return r;
}

TEST(LowPrecisionLayers, Bf16ComputeRoundsInputsAndWeights) {
  for (bool conv : {false, true}) {
    SCOPED_TRACE(conv ? "conv2d" : "linear");
    const Shape sample = conv ? Shape{3, 6, 6} : Shape{24};
    Shape xs = {2};
    for (int64_t d : sample) xs.push_back(d);
    const Tensor x = random_tensor(xs, 5), w = random_tensor(conv ? Shape{4, 3, 3, 3} : Shape{7, 24}, 6, 0.3f),
                 b = random_tensor({w.dim(0)}, 7, 0.1f);
    const char* op = conv ? "conv2d" : "linear";
    const Tensor want = run_graph(layer_graph(op, sample, {bf16_rounded(w), b}, json::object()), bf16_rounded(x));
    const Tensor plain = run_graph(layer_graph(op, sample, {w, b}, json::object()), x);
    // f32 weights with compute bf16, and BF16-stored weights, give the same.
    const Tensor got = run_graph(layer_graph(op, sample, {w, b}, {{"compute", "bf16"}}), x);
    const Tensor stored = run_graph(layer_graph(op, sample, {w.to(DType::bf16), b}, {{"compute", "bf16"}}), x);
    EXPECT_LT(max_abs_diff(got, want), 1e-5);
    EXPECT_LT(max_abs_diff(stored, want), 1e-5);
    EXPECT_GT(max_abs_diff(got, plain), 1e-4);  // the rounding really happened
  }
}

TEST(LowPrecisionLayers, F16WeightsComputeInF32) {
  const Tensor x = random_tensor({3, 24}, 5), w = random_tensor({7, 24}, 6, 0.3f), b = random_tensor({7}, 7, 0.1f);
  const Tensor w16 = w.to(DType::f16);
  const Tensor want = run_graph(layer_graph("linear", {24}, {w16.to(DType::f32), b}, json::object()), x);
  const Tensor got = run_graph(layer_graph("linear", {24}, {w16, b}, json::object()), x);
  EXPECT_LT(max_abs_diff(got, want), 1e-6);
  Graph g = layer_graph("linear", {24}, {w16, b}, json::object());
  Executor ex(g);
  ex.set_training(true);
  expect_error([&] { ex.forward({x}); }, {"F16", "inference-only"});
  expect_error([] { run_graph(layer_graph("linear", {2}, {Tensor::zeros({1, 2}), Tensor::zeros({1})}, {{"compute", "fp8"}}),
                              Tensor::zeros({1, 2})); },
               {"compute", "fp8"});
}

// ---- the quantize pass ----

void expect_close_model(const Graph& float_graph, const Graph& q, const Tensor& x, double tolerance, double agreement) {
  const Tensor want = run_graph(float_graph, x), got = run_graph(q, x);
  const double err = max_abs_diff(got, want);
  EXPECT_LT(err, tolerance * (1.0 + max_abs(want)));
  EXPECT_GT(err, 0.0);  // it really is quantized
  EXPECT_GE(argmax_agreement(got, want), agreement);
}

TEST(QuantizeGraph, Int8MlpStaysCloseToFloat) {
  const Graph g = optimize_for_inference(activation_mlp());
  const Tensor calib = random_tensor({64, 20}, 21), test = random_tensor({64, 20}, 22);
  const Graph q = quantize_graph(g, calibrate_layers(g, calib, Precision::int8));
  EXPECT_EQ(count_op(q, "qlinear"), 3);
  EXPECT_EQ(count_op(q, "linear"), 0);
  EXPECT_EQ(q.params().at("fc1.weight").value.dtype(), DType::i8);
  expect_close_model(g, q, test, 0.05, 0.9);
  const Graph dyn = quantize_graph(g, calibrate_layers(g, calib, Precision::int8, true));
  expect_close_model(g, dyn, test, 0.05, 0.9);
}

TEST(QuantizeGraph, Int8CnnKeepsArgmax) {
  for (bool residual : {false, true}) {
    SCOPED_TRACE(residual ? "residual_net" : "small_cnn");
    const Graph g = optimize_for_inference(residual ? residual_net() : small_cnn());
    const Shape s = residual ? Shape{64, 3, 12, 12} : Shape{64, 2, 10, 10};
    const Tensor calib = random_tensor(s, 31), test = random_tensor(s, 32);
    const Graph q = quantize_graph(g, calibrate_layers(g, calib, Precision::int8, false, true));
    EXPECT_EQ(count_op(q, "conv2d"), 0);
    EXPECT_GE(count_op(q, "qconv2d"), 2);
    expect_close_model(g, q, test, 0.08, 0.85);
  }
}

TEST(QuantizeGraph, BiasCorrectionRemovesTheMeanError) {
  // Inputs with a large mean: the weights' rounding error times E[x] is a
  // systematic shift of every output, which bias correction takes out.
  Graph g;
  int x = g.add_input("x", {64});
  g.set_output(g.add("linear", {x, g.add_param("l.weight", random_tensor({16, 64}, 3, 0.2f)),
                                g.add_param("l.bias", Tensor::zeros({16}))}, {}, "l"));
  Tensor data = random_tensor({256, 64}, 4, 0.3f);
  for (int64_t i = 0; i < data.numel(); ++i) data.data<float>()[i] += 3.0f;
  auto mean_error = [&](bool correct) {
    const Graph q = quantize_graph(g, calibrate_layers(g, data, Precision::int8, false, correct));
    const Tensor a = run_graph(q, data), b = run_graph(g, data);
    double worst = 0;
    for (int64_t o = 0; o < 16; ++o) {
      double m = 0;
      for (int64_t r = 0; r < 256; ++r) m += a.data<float>()[r * 16 + o] - b.data<float>()[r * 16 + o];
      worst = std::max(worst, std::abs(m / 256));
    }
    return worst;
  };
  const double plain = mean_error(false), corrected = mean_error(true);
  EXPECT_LT(corrected, 0.5 * plain) << "plain " << plain << ", corrected " << corrected;
}

TEST(QuantizeGraph, Bf16AndFp16Layers) {
  const Graph g = optimize_for_inference(small_cnn());
  const Tensor x = random_tensor({16, 2, 10, 10}, 41);
  std::map<std::string, LayerQuant> layers = {{"conv1", {Precision::bf16}}, {"conv2", {Precision::fp16}}, {"fc", {Precision::fp32}}};
  const Graph q = quantize_graph(g, layers);
  EXPECT_EQ(q.params().at("conv1.weight").value.dtype(), DType::bf16);
  EXPECT_EQ(q.params().at("conv2.weight").value.dtype(), DType::f16);
  EXPECT_EQ(q.params().at("fc.weight").value.dtype(), DType::f32);
  for (const Node& n : q.nodes()) {
    if (n.name == "conv1") {
      EXPECT_EQ(n.attrs.value("compute", ""), "bf16");
    }
  }
  expect_close_model(g, q, x, 0.02, 0.95);
}

TEST(QuantizeGraph, SavesAndLoadsAsAModelFile) {
  const Graph g = optimize_for_inference(small_cnn());
  const Tensor x = random_tensor({8, 2, 10, 10}, 51);
  auto layers = calibrate_layers(g, x, Precision::int8);
  layers["conv2"] = LayerQuant{Precision::fp16};
  layers["fc"] = LayerQuant{Precision::bf16};
  const Graph q = quantize_graph(g, layers);
  TempDir dir;
  const std::string path = dir.file("q.leanai");
  save_model(path, q, json::object());
  const LoadedModel m = load_model(path);
  EXPECT_EQ(m.graph.params().at("conv1.weight").value.dtype(), DType::i8);
  EXPECT_EQ(m.graph.params().at("conv2.weight").value.dtype(), DType::f16);
  EXPECT_EQ(max_abs_diff(run_graph(m.graph, x), run_graph(q, x)), 0.0);
}

TEST(QuantizeGraph, ABiasSharedWithAnotherLayerStaysItsOwn) {
  Graph g;
  int x = g.add_input("x", {8});
  int b = g.add_param("shared.bias", random_tensor({8}, 1, 0.1f));
  int y = g.add("linear", {x, g.add_param("a.weight", random_tensor({8, 8}, 2, 0.3f)), b}, {}, "a");
  g.set_output(g.add("linear", {y, g.add_param("c.weight", random_tensor({8, 8}, 3, 0.3f)), b}, {}, "c"));
  const Tensor data = random_tensor({16, 8}, 4);
  const Graph q = quantize_graph(g, calibrate_layers(g, data, Precision::int8, false, true));  // corrects the biases
  EXPECT_EQ(count_op(q, "qlinear"), 2);
  expect_close_model(g, q, data, 0.05, 0.8);
  const Graph half = quantize_graph(g, {{"a", calibrate_layers(g, data, Precision::int8)["a"]}});
  EXPECT_EQ(half.params().at("shared.bias").value.dtype(), DType::f32);
  expect_close_model(g, half, data, 0.05, 0.8);
}

TEST(QuantizeGraph, Int4LinearBecomesQlinearW4) {
  Graph g;
  int x = g.add_input("x", {64});
  int y = g.add("linear", {x, g.add_param("a.weight", random_tensor({32, 64}, 2, 0.3f)),
                           g.add_param("a.bias", random_tensor({32}, 1, 0.1f))}, {{"post_ops", json::array({{{"op", "relu"}}})}}, "a");
  g.set_output(y);
  const Tensor data = random_tensor({16, 64}, 4);
  LayerQuant q{Precision::int4};
  q.int4_block = 32;
  const Graph w4 = quantize_graph(g, {{"a", q}});
  EXPECT_EQ(count_op(w4, "qlinear_w4"), 1);
  EXPECT_EQ(w4.params().at("a.weight").value.dtype(), DType::u8);
  EXPECT_EQ(w4.params().at("a.weight").value.shape(), (Shape{32, 32}));
  EXPECT_EQ(w4.params().at("a.w_scale").value.shape(), (Shape{32, 2}));
  // 4-bit weights: within a few percent of the float layer, with the relu kept.
  expect_close_model(g, w4, data, 0.08, 0.8);
  q.int4_block = 48;
  expect_error([&] { quantize_graph(g, {{"a", q}}); }, {"a", "32 or 64"});
}

TEST(QuantizeGraph, ClearErrors) {
  const Graph g = optimize_for_inference(activation_mlp());
  expect_error([&] { quantize_graph(g, {{"fc9", {Precision::int8}}}); }, {"fc9", "fc1, fc2, fc3"});
  expect_error([&] { quantize_graph(g, {{"fc1", {Precision::int4}}}); }, {"fc1", "int4", "multiple of the block"});
  LayerQuant bad{Precision::int8};
  bad.input.scale = 0.0f;
  expect_error([&] { quantize_graph(g, {{"fc1", bad}}); }, {"fc1", "scale"});
}

}  // namespace
}  // namespace leanai
