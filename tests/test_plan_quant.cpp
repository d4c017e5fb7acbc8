// The compiled Plan on quantized graphs against the Executor's reference
// kernels: int8 static (an int8 region through max pooling and flatten, and a
// residual net), dynamic, s8 sources, bf16 compute and fp16 weight storage;
// the int8 region has no quantize step between its layers. Run it also with
// DNNL_MAX_CPU_ISA=AVX2 and =AVX512_CORE (no VNNI: the 7-bit weight path).
#include <gtest/gtest.h>

#include <cstdlib>

#include "graph_fixtures.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/quant/input_quant.h"
#include "leanai/kernels/int8_small_conv.h"
#include "leanai/runtime/lower_quantized.h"
#include "leanai/runtime/plan.h"
#include "quant_fixtures.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using namespace test_support;

const TempDir kCacheDir;
const bool kCacheDirSet = setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1) == 0;

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(double(t.data<float>()[i])));
  return m;
}

// Plan output vs the Executor on the same (quantized) graph, relative to the output's size.
double plan_vs_reference(const Graph& g, const Tensor& x) {
  const Tensor want = run_graph(g, x);
  CompileOptions o;
  o.tune = false;
  Plan plan(g, o);
  const Tensor& got = plan.run(x);
  EXPECT_EQ(got.shape(), want.shape());
  return max_abs_diff(got, want) / (1.0 + max_abs(want));
}

// Requantization inside oneDNN may round a value to the neighbouring step
// where the reference's f32 lands on a tie; without VNNI the Plan's weights
// are 7-bit (see runtime/lower_quantized.h), a few steps more.
double int8_tolerance() { return runtime::cpu_has_vnni() ? 0.01 : 0.05; }

std::vector<PlanStep> plan_steps(const Graph& g, int64_t batch) {
  CompileOptions o;
  o.tune = false;
  Plan plan(g, o);
  return plan.steps(batch);
}

int count_kind(const std::vector<PlanStep>& steps, const std::string& kind) {
  int n = 0;
  for (const PlanStep& s : steps) n += s.kind == kind;
  return n;
}

// Whether oneDNN ran the int8 layers on AVX-512 VNNI or AMX kernels, where it
// has a kernel for every residual-output form (elsewhere it may fall back).
bool vnni_or_amx_kernels(const std::string& listing) {
  return listing.find("avx512_core_vnni") != std::string::npos || listing.find("avx512_core_amx") != std::string::npos;
}

Graph quantized(const Graph& float_graph, const Tensor& calib, Precision p, bool dynamic = false, DType dtype = DType::u8) {
  const Graph g = optimize_for_inference(float_graph);
  auto layers = calibrate_layers(g, calib, p, dynamic);
  for (auto& [name, lq] : layers) {
    if (dtype == DType::i8) {
      const float m = std::max(std::abs(dequantize_value(0, lq.input)), std::abs(dequantize_value(255, lq.input)));
      lq.input = params_for_range(-m, m, DType::i8);
    }
  }
  return quantize_graph(g, layers);
}

TEST(PlanQuant, Int8RegionThroughPoolingAndFlatten) {
  const Graph q = quantized(small_cnn(), random_tensor({32, 2, 10, 10}, 1), Precision::int8);
  for (int64_t batch : {1, 6}) EXPECT_LT(plan_vs_reference(q, random_tensor({batch, 2, 10, 10}, 2 + batch)), int8_tolerance());
  const std::vector<PlanStep> steps = plan_steps(q, 4);
  std::string report;
  for (const PlanStep& s : steps) report += s.name + " | " + s.kind + " | " + s.detail + "\n";
  SCOPED_TRACE(report);
  EXPECT_EQ(count_kind(steps, "qconv2d"), 2);
  EXPECT_EQ(count_kind(steps, "qlinear"), 1);
  // One quantize where the region begins (the model input), or none when the
  // first conv runs on leanai's small-channel kernel, which quantizes its input
  // itself; none inside the region, and no dequantize.
  const bool first_quantizes = steps[0].detail.find("quantizes its input") != std::string::npos;
  EXPECT_EQ(count_kind(steps, "quantize"), first_quantizes ? 0 : 1);
  EXPECT_EQ(count_kind(steps, "dequantize"), 0);
  EXPECT_EQ(steps[0].kind, first_quantizes ? "qconv2d" : "quantize");
  // leanai's own kernels where they pay: the 2-channel first conv where the
  // CPU (as oneDNN is allowed to use it) has AVX-512 VNNI; int8 max pooling of
  // the NHWC bytes oneDNN's int8 convolutions write, on any CPU.
  if (runtime::cpu_has_vnni() && int8_small_conv_cpu_ok() && !std::getenv("DNNL_MAX_CPU_ISA")) {
    EXPECT_TRUE(first_quantizes);
  }
  EXPECT_EQ(count_kind(steps, "pooling"), 1);
  // The flatten reads conv2's NHWC bytes as they lie, fc's weight columns in
  // their order: no reorder (the accuracy check above fails if the order is wrong).
  EXPECT_EQ(count_kind(steps, "reorder"), 0);
  for (const PlanStep& s : steps) {
    if (s.kind == "pooling") {
      EXPECT_NE(s.detail.find("leanai int8 max, u8"), std::string::npos) << s.detail;
    }
  }
  for (const PlanStep& s : steps) {
    if (s.kind == "qconv2d") {
      EXPECT_NE(s.detail.find("-> u8 (requantized)"), std::string::npos) << s.detail;
    }
    if (s.kind == "qlinear") {
      EXPECT_NE(s.detail.find("-> f32"), std::string::npos) << s.detail;
    }
    EXPECT_EQ(s.kind.find("kernel:"), std::string::npos) << "fell back to a reference kernel: " << s.name;
  }
}

TEST(PlanQuant, Int8ResidualNet) {
  const Graph q = quantized(residual_net(), random_tensor({32, 3, 12, 12}, 3), Precision::int8);
  EXPECT_LT(plan_vs_reference(q, random_tensor({5, 3, 12, 12}, 4)), int8_tolerance());
  const std::vector<PlanStep> steps = plan_steps(q, 5);
  EXPECT_GE(count_kind(steps, "qconv2d"), 6);
  std::string listing;
  bool block_output_int8 = false;
  for (const PlanStep& s : steps) {
    EXPECT_EQ(s.kind.find("kernel:"), std::string::npos) << "fell back to a reference kernel: " << s.name;
    listing += s.name + " " + s.kind + " " + s.detail + "\n";
    if (s.name == "layer1.conv2") block_output_int8 = s.detail.find("(requantized)") != std::string::npos;
  }

  // layer2's conv1 and shortcut read layer1's output with one range. layer1's
  // conv2 writes it in u8 (its residual add fused) where oneDNN has a kernel
  // for that, as with AVX-512 VNNI or AMX; else it is quantized once, for both.
  if (vnni_or_amx_kernels(listing)) {
    EXPECT_TRUE(block_output_int8) << listing;
  }
  // The stem writes u8 for layer1: its conv1 reads the bytes, and its conv2
  // sums them in place as they lie (in the operand's units), where oneDNN has
  // a kernel for that; no quantize between them either way.
  if (vnni_or_amx_kernels(listing)) {
    EXPECT_NE(listing.find("residual read in u8 (sum)"), std::string::npos) << listing;
  }
  EXPECT_EQ(listing.find("layer1.conv1 (quantize)"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("layer2.conv1 (quantize)") != std::string::npos, !block_output_int8) << listing;
  EXPECT_EQ(listing.find("layer2.sconv (quantize)"), std::string::npos) << listing;
}

// The residual-output paths beside the plain one above: an s8 output whose s8
// operand is summed in place; a u8 operand under an s8 output, which a sum
// cannot read (it takes the destination's type), added by a binary post-op;
// and a dynamically quantized writer (its scale and bias are post-ops 0 and 1,
// so the residual add is post-op 2) whose readers are static.
TEST(PlanQuant, Int8ResidualOutputSignedOrFromADynamicLayer) {
  const Graph g = optimize_for_inference(residual_net());
  const Tensor calib = random_tensor({32, 3, 12, 12}, 3), x = random_tensor({5, 3, 12, 12}, 4);
  enum Case { signed_sum, unsigned_operand_signed_output, dynamic_writer };
  for (Case c : {signed_sum, unsigned_operand_signed_output, dynamic_writer}) {
    SCOPED_TRACE(c == signed_sum ? "s8 output, s8 operand" : c == dynamic_writer ? "dynamic writer" : "s8 output, u8 operand");
    Graph q;
    if (c == signed_sum) {
      q = quantized(residual_net(), calib, Precision::int8, false, DType::i8);
    } else {
      auto layers = calibrate_layers(g, calib, Precision::int8);
      if (c == dynamic_writer) layers["layer1.conv2"].dynamic = true;
      if (c == unsigned_operand_signed_output) {
        for (const char* reader : {"layer2.conv1", "layer2.sconv"}) {  // layer1's output in s8; the stem's stays u8
          QuantParams& in = layers[reader].input;
          const float m = std::max(std::abs(dequantize_value(0, in)), std::abs(dequantize_value(255, in)));
          in = params_for_range(-m, m, DType::i8);
        }
      }
      q = quantize_graph(g, layers);
    }
    EXPECT_LT(plan_vs_reference(q, x), int8_tolerance());
    std::string listing, writer;
    for (const PlanStep& s : plan_steps(q, 5)) {
      listing += s.name + " " + s.kind + " " + s.detail + "\n";
      if (s.name == "layer1.conv2") writer = s.detail;
    }
    EXPECT_EQ(writer.find("dynamic") != std::string::npos, c == dynamic_writer) << listing;
    if (vnni_or_amx_kernels(listing)) {
      EXPECT_NE(writer.find(c == dynamic_writer ? "u8 (requantized)" : "s8 (requantized)"), std::string::npos) << listing;
      if (c == signed_sum) {
        EXPECT_NE(writer.find("residual read in s8 (sum)"), std::string::npos) << listing;
      }
      if (c == unsigned_operand_signed_output) {
        EXPECT_NE(writer.find("residual read in u8"), std::string::npos) << listing;
        EXPECT_EQ(writer.find("(sum)"), std::string::npos) << listing;
      }
    }
  }
}

// A block whose input is read again after the block: the fused add cannot sum
// into the input's own storage (a later layer still reads it), so the sum runs
// on a copy, and the later reader sees the input unchanged.
TEST(PlanQuant, Int8ResidualSumIntoACopyWhenTheOperandIsReadLater) {
  Graph g;
  NetBuilder b(g, 7);
  const int x = g.add("relu", {b.conv("stem", g.add_input("input", {3, 12, 12}), 3, 8, 3, 1, true)});
  const int block = b.block("layer1", x, 8, 8, 1);
  const int late = g.add("relu", {b.conv("late", x, 8, 8, 3, 1, true)});  // reads x after layer1's add
  const int next = b.conv("next", block, 8, 8, 3, 1, true);               // so layer1 writes int8
  int y = g.add("flatten", {g.add("global_avgpool", {g.add("add", {next, late})})});
  y = g.add("linear", {y, b.param("fc.weight", {5, 8}, 0.3f), b.param("fc.bias", {5}, 0.1f)}, {}, "fc");
  g.set_output(y);
  const Graph q = quantized(g, random_tensor({32, 3, 12, 12}, 8), Precision::int8);
  EXPECT_LT(plan_vs_reference(q, random_tensor({4, 3, 12, 12}, 9)), int8_tolerance());
  std::string listing;
  for (const PlanStep& s : plan_steps(q, 4)) listing += s.name + " " + s.kind + " " + s.detail + "\n";
  if (vnni_or_amx_kernels(listing)) {
    EXPECT_NE(listing.find("residual read in u8 (sum)"), std::string::npos) << listing;
    EXPECT_NE(listing.find("(residual copy)"), std::string::npos) << listing;
  }
}

TEST(PlanQuant, Int8SignedSources) {
  const Graph q = quantized(activation_mlp(), random_tensor({64, 20}, 5), Precision::int8, false, DType::i8);
  EXPECT_LT(plan_vs_reference(q, random_tensor({9, 20}, 6)), int8_tolerance());
  const Graph c = quantized(small_cnn(), random_tensor({32, 2, 10, 10}, 1), Precision::int8, false, DType::i8);
  EXPECT_LT(plan_vs_reference(c, random_tensor({3, 2, 10, 10}, 7)), int8_tolerance());
}

TEST(PlanQuant, DynamicInt8) {
  for (DType dtype : {DType::u8, DType::i8}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Graph mlp = quantized(activation_mlp(), random_tensor({8, 20}, 8), Precision::int8, true, dtype);
    const Graph cnn = quantized(residual_net(), random_tensor({8, 3, 12, 12}, 9), Precision::int8, true, dtype);
    EXPECT_LT(plan_vs_reference(mlp, random_tensor({7, 20}, 10)), int8_tolerance());
    EXPECT_LT(plan_vs_reference(cnn, random_tensor({3, 3, 12, 12}, 11)), int8_tolerance());
    int dynamic = 0;
    for (const PlanStep& s : plan_steps(cnn, 3)) dynamic += s.detail.find("dynamic") != std::string::npos && s.kind == "qconv2d";
    EXPECT_GE(dynamic, 6);
  }
  // Steady state: a run allocates nothing, the per-batch params included.
  const Graph cnn = quantized(small_cnn(), random_tensor({8, 2, 10, 10}, 9), Precision::int8, true);
  CompileOptions o;
  o.tune = false;
  Plan plan(cnn, o);
  const Tensor x = random_tensor({2, 2, 10, 10}, 12);
  plan.run(x);
  const int64_t buffers = Buffer::created();
  plan.run(x);
  EXPECT_EQ(Buffer::created(), buffers);
}

TEST(PlanQuant, GroupedStridedDilatedConvolutions) {
  Graph g;
  int x = g.add_input("x", {4, 11, 11});
  int y = g.add("conv2d", {x, g.add_param("g.weight", random_tensor({6, 2, 3, 3}, 1, 0.3f)), g.add_param("g.bias", random_tensor({6}, 2, 0.1f))},
                {{"groups", 2}, {"stride", {2, 1}}, {"padding", {1, 2}}, {"dilation", {1, 2}}}, "g");
  y = g.add("relu", {y});
  y = g.add("conv2d", {y, g.add_param("p.weight", random_tensor({5, 6, 1, 1}, 3, 0.3f))}, json::object(), "p");
  g.set_output(g.add("linear", {g.add("flatten", {y}), g.add_param("fc.weight", random_tensor({3, 5 * 6 * 11}, 4, 0.05f))},
                     json::object(), "fc"));
  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "dynamic" : "static");
    const Graph q = quantized(g, random_tensor({16, 4, 11, 11}, 5), Precision::int8, dynamic);
    EXPECT_LT(plan_vs_reference(q, random_tensor({3, 4, 11, 11}, 6)), int8_tolerance());
  }
}

TEST(PlanQuant, MixedPrecisionPerLayer) {
  // A dynamic layer feeding a static one (its output requantized through the
  // pool), then a bf16 layer reading the int8 region's f32 end.
  const Graph g = optimize_for_inference(small_cnn());
  auto layers = calibrate_layers(g, random_tensor({32, 2, 10, 10}, 1), Precision::int8);
  layers["conv1"].dynamic = true;
  layers["fc"] = LayerQuant{Precision::bf16};
  const Graph q = quantize_graph(g, layers);
  const double tolerance = std::max(int8_tolerance(), runtime::cpu_has_bf16() ? 0.0 : 3e-2);
  EXPECT_LT(plan_vs_reference(q, random_tensor({4, 2, 10, 10}, 2)), tolerance);
  const std::vector<PlanStep> steps = plan_steps(q, 4);
  EXPECT_EQ(count_kind(steps, "qconv2d"), 2);
  for (const PlanStep& s : steps) {
    if (s.name != "conv1") continue;
    EXPECT_NE(s.detail.find("dynamic"), std::string::npos) << s.detail;
    EXPECT_NE(s.detail.find("(requantized)"), std::string::npos) << s.detail;
  }
  for (const PlanStep& s : steps) {
    if (s.name == "fc" && runtime::cpu_has_bf16()) {
      EXPECT_NE(s.detail.find("bf16 -> f32"), std::string::npos) << s.detail;
    }
  }
}

// A block whose shortcut is read again after its add: the add fused into
// conv2 must copy the shortcut into conv2's destination, and the copy must
// run before conv2 does (it once ran after, in int8 and bf16 layers).
Graph shortcut_read_twice() {
  Graph g;
  NetBuilder b(g, 7);
  const int x = g.add_input("input", {3, 12, 12});
  const int s = g.add("relu", {b.conv("stem", x, 3, 8, 3, 1, true)});
  const int y = b.block("layer1", s, 8, 8, 1);
  const int side = b.conv("side", s, 8, 8, 1, 1, false);  // lowered after layer1's add
  const int both = g.add("add", {g.add("global_avgpool", {y}), g.add("global_avgpool", {side})});
  const int w = b.param("fc.weight", {5, 8}, 0.25f), bias = b.param("fc.bias", {5}, 0.1f);
  g.set_output(g.add("linear", {g.add("flatten", {both}), w, bias}, {}, "fc"));
  return g;
}

TEST(PlanQuant, EveryMixOfPrecisionsAroundResidualAdds) {
  // Region borders in every place a plan can put them: next to residual adds
  // (fused into a conv), between int8, bf16, fp16 and fp32 layers.
  const double tolerance = std::max(int8_tolerance(), runtime::cpu_has_bf16() ? 0.02 : 3e-2);
  const Precision choices[] = {Precision::fp32, Precision::bf16, Precision::fp16, Precision::int8};
  Rng rng(11);
  for (const Graph& net : {shortcut_read_twice(), residual_net()}) {
    const Graph g = optimize_for_inference(net);
    const auto calibrated = calibrate_layers(g, random_tensor({32, 3, 12, 12}, 3), Precision::int8);
    for (int trial = 0; trial < 16; ++trial) {
      std::map<std::string, LayerQuant> layers;
      std::string plan;
      for (const auto& [name, lq] : calibrated) {
        LayerQuant q = lq;
        // First every layer at int8, then at bf16; then random mixes.
        q.precision = trial == 0 ? Precision::int8 : trial == 1 ? Precision::bf16 : choices[rng.below(4)];
        plan += name + "=" + precision_name(q.precision) + " ";
        if (q.precision != Precision::fp32) layers[name] = q;
      }
      SCOPED_TRACE(plan);
      EXPECT_LT(plan_vs_reference(quantize_graph(g, layers), random_tensor({5, 3, 12, 12}, 4)), tolerance);
    }
  }
}

TEST(PlanQuant, SaturatingProductsStayCorrect) {
  // u8 values near 255 times weights near 127: each vpmaddubsw pair sum
  // (2 * 255 * 127) overflows 16 bits on CPUs without VNNI.
  Graph g;
  const int64_t k = 64;
  int x = g.add_input("x", {k});
  Tensor wq = Tensor::empty({3, k}, DType::i8);
  for (int64_t i = 0; i < wq.numel(); ++i) wq.data<int8_t>()[i] = static_cast<int8_t>(i % 3 == 2 ? -127 : 127);
  const QuantParams p = params_for_range(0.0f, 2.55f, DType::u8);
  g.set_output(g.add("qlinear", {x, g.add_param("l.weight", wq, false), g.add_param("l.w_scale", Tensor::full({3}, 0.01f), false),
                                 g.add_param("l.bias", Tensor::zeros({3}), false)},
                     {{"input", input_quant_attr(p)}}, "l"));
  const Tensor xs = Tensor::full({2, k}, 2.5f);
  EXPECT_LT(plan_vs_reference(g, xs), 0.02);
}

TEST(PlanQuant, Bf16Compute) {
  const Graph g = optimize_for_inference(small_cnn());
  std::map<std::string, LayerQuant> layers;
  for (const char* name : {"conv1", "conv2", "fc"}) layers[name].precision = Precision::bf16;
  const Graph q = quantize_graph(g, layers);
  // With native bf16 the Plan rounds exactly as the reference; elsewhere it computes in f32.
  const double tolerance = runtime::cpu_has_bf16() ? 1e-3 : 3e-2;
  EXPECT_LT(plan_vs_reference(q, random_tensor({4, 2, 10, 10}, 13)), tolerance);
  const Graph mlp = quantized(activation_mlp(), random_tensor({8, 20}, 8), Precision::bf16);
  EXPECT_LT(plan_vs_reference(mlp, random_tensor({5, 20}, 14)), tolerance);
  if (runtime::cpu_has_bf16()) {
    // A bf16 region: conv1 and conv2 hand bf16 on (through the pool and the
    // flatten) to layers that would round their input to bf16 anyway.
    int to_bf16 = 0, to_f32 = 0;
    const std::vector<PlanStep> steps = plan_steps(q, 4);
    std::string report;
    for (const PlanStep& s : steps) {
      to_bf16 += s.detail.find("bf16 -> bf16") != std::string::npos;
      to_f32 += s.detail.find("bf16 -> f32") != std::string::npos;
      report += s.name + " | " + s.kind + " | " + s.detail + "\n";
    }
    EXPECT_EQ(to_bf16, 2) << report;
    EXPECT_EQ(to_f32, 1) << report;
    EXPECT_EQ(count_kind(steps, "dequantize"), 0) << report;
  }
}

TEST(PlanQuant, Fp16WeightStorage) {
  const Graph g = optimize_for_inference(residual_net());
  std::map<std::string, LayerQuant> layers;
  for (const Node& n : g.nodes())
    if (!layer_name(g, n).empty()) layers[layer_name(g, n)].precision = Precision::fp16;
  const Graph q = quantize_graph(g, layers);
  EXPECT_LT(plan_vs_reference(q, random_tensor({3, 3, 12, 12}, 15)), 1e-4);
}

}  // namespace
}  // namespace leanai
