// Dynamic sparsity with gated neurons: compact_gates removes the switched-off
// neurons without changing outputs (MLP and CNN, with batch-norm, pooling and
// flatten between), leaves patterns it cannot compact alone; the sparsity
// schedule ramps cubically; with_gates gates the presets' hidden layers; and a
// gated MLP keeps learning with 70% of its hidden neurons off.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "blob_data.h"
#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/data/dataset.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/model_builder.h"
#include "leanai/nn/models.h"
#include "leanai/nn/sparse_training.h"
#include "leanai/nn/sparsity_schedule.h"
#include "leanai/nn/trainer.h"
#include "leanai/runtime/plan.h"
#include "leanai/sparse/gate_mask.h"
#include "leanai/sparse/insert_gates.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using namespace test_support;

constexpr double kTolerance = 1e-5;

// Kernel choices a Plan measures are cached in a temp dir, not in $HOME.
const TempDir kCacheDir;
const bool kCacheDirSet = setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1) == 0;

double output_difference(Graph& a, Graph& b, const Tensor& x) {
  Executor ea(a), eb(b);
  Tensor ya = ea.forward({x}).clone();
  return max_abs_diff(ya, eb.forward({x}));
}

Shape param_shape(const Graph& g, const std::string& name) { return g.params().at(name).value.shape(); }

// Channels that stay on at sparsity s: C - floor(s * C), with s as a decimal.
int64_t kept(int64_t channels, double s) { return channels - static_cast<int64_t>(std::floor(s * channels + 1e-9)); }

// Gates spread like trained ones (not all near 1) and, for the CNN,
// non-trivial batch-norm parameters and running statistics.
void randomize(Graph& g, uint64_t seed) {
  for (auto& [name, p] : g.params()) {
    float* v = p.value.data<float>();
    Tensor r = random_tensor(p.value.shape(), seed++, 0.3f);
    if (name.ends_with(".gates") || name.ends_with("running_mean") || name.ends_with(".bias")) {
      p.value.copy_from(r);
    } else if (name.ends_with("running_var") || (name.starts_with("bn") && name.ends_with(".weight"))) {
      for (int64_t i = 0; i < p.value.numel(); ++i) v[i] = 0.6f + std::abs(r.data<float>()[i]);
    }
  }
}

// input [20] -> fc1(32) -> relu -> gate1 -> fc2(24) -> relu -> gate2 -> fc3(5)
Graph gated_mlp(double s) {
  ModelBuilder b({20}, 1);
  b.linear(32).activation("relu").gate(s).linear(24).activation("relu").gate(s).linear(5);
  Graph g = b.finish();
  randomize(g, 100);
  return g;
}

// input [3, 8, 8] -> conv1(8, 3x3, pad 1) -> bn1 -> relu -> gate1 -> maxpool 2
// -> conv2(12, 3x3, pad 1) -> relu -> gate2 -> flatten -> fc1(5)
Graph gated_cnn(double s) {
  ModelBuilder b({3, 8, 8}, 2);
  b.conv2d(8, 3, 1, 1).batchnorm().activation("relu").gate(s).maxpool2d(2);
  b.conv2d(12, 3, 1, 1).activation("relu").gate(s).flatten().linear(5);
  Graph g = b.finish();
  randomize(g, 200);
  return g;
}

// ---------------------------------------------------------------------------
// compact_gates

TEST(CompactGates, MlpKeepsOutputsAndShrinksLayers) {
  for (double s : {0.5, 0.7}) {
    SCOPED_TRACE("sparsity " + std::to_string(s));
    Graph g = gated_mlp(s);
    Graph c = compact_gates(g);
    EXPECT_EQ(count_op(c, "neuron_gate"), 0);
    EXPECT_FALSE(c.params().count("gate1.gates"));
    EXPECT_FALSE(c.params().count("gate2.sparsity"));
    const int64_t a = kept(32, s), b = kept(24, s);  // 16, 12 at 0.5; 10, 8 at 0.7
    EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{a, 20}));
    EXPECT_EQ(param_shape(c, "fc1.bias"), (Shape{a}));
    EXPECT_EQ(param_shape(c, "fc2.weight"), (Shape{b, a}));
    EXPECT_EQ(param_shape(c, "fc2.bias"), (Shape{b}));
    EXPECT_EQ(param_shape(c, "fc3.weight"), (Shape{5, b}));
    EXPECT_EQ(param_shape(c, "fc3.bias"), (Shape{5}));
    EXPECT_LT(output_difference(g, c, random_tensor({7, 20}, 3)), kTolerance);
    // The input graph is untouched.
    EXPECT_EQ(param_shape(g, "fc1.weight"), (Shape{32, 20}));
  }
}

TEST(CompactGates, CnnWithBatchNormPoolingAndFlattenKeepsOutputsAndShrinksLayers) {
  for (double s : {0.5, 0.7}) {
    SCOPED_TRACE("sparsity " + std::to_string(s));
    Graph g = gated_cnn(s);
    Graph c = compact_gates(g);
    EXPECT_EQ(count_op(c, "neuron_gate"), 0);
    const int64_t a = kept(8, s), b = kept(12, s);  // 4, 6 at 0.5; 3, 4 at 0.7
    EXPECT_EQ(param_shape(c, "conv1.weight"), (Shape{a, 3, 3, 3}));
    EXPECT_EQ(param_shape(c, "conv1.bias"), (Shape{a}));
    for (const char* bn : {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"})
      EXPECT_EQ(param_shape(c, bn), (Shape{a})) << bn;
    EXPECT_EQ(param_shape(c, "conv2.weight"), (Shape{b, a, 3, 3}));
    EXPECT_EQ(param_shape(c, "conv2.bias"), (Shape{b}));
    EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{5, b * 4 * 4}));  // one 4x4 column group per channel
    EXPECT_LT(output_difference(g, c, random_tensor({3, 3, 8, 8}, 4)), kTolerance);
  }
}

TEST(CompactGates, ActiveFlopsAreThoseOfTheSmallerDenseModel) {
  Graph g = gated_mlp(0.7);
  Executor ex(g);
  const double gated_flops = ex.flops_per_sample();  // counts the off neurons as if they ran
  ModelBuilder b({20}, 1);
  b.linear(kept(32, 0.7)).activation("relu").linear(kept(24, 0.7)).activation("relu").linear(5);
  Graph small = b.finish();
  Executor small_ex(small);
  EXPECT_DOUBLE_EQ(active_flops_per_sample(g), small_ex.flops_per_sample());
  EXPECT_LT(active_flops_per_sample(g), 0.4 * gated_flops);
}

TEST(CompactGates, LeavesUnsupportedPatternsInPlaceAndCompactsTheRest) {
  Graph g;
  NetBuilder nb(g, 7);
  Rng rng(8);
  auto gate = [&](int x, int64_t channels, const std::string& name) {
    const GateParams p = add_gate_params(g, name, channels, 0.5, rng);
    g.params().at(name + ".gates").value.copy_from(random_tensor({channels}, 50 + channels));
    return g.add("neuron_gate", {x, p.gates, p.sparsity});
  };
  auto linear = [&](int x, int64_t in, int64_t out, const std::string& name) {
    return g.add("linear", {x, nb.param(name + ".weight", {out, in}, 0.3f), nb.param(name + ".bias", {out}, 0.1f)});
  };
  int x = g.add_input("input", {16});
  // A residual add reads gate1: its off channels still carry the input.
  int y = g.add("add", {gate(g.add("relu", {linear(x, 16, 16, "fc1")}), 16, "res"), x});
  // sigmoid(0) = 0.5: an off channel would not be zero at the next layer.
  y = g.add("sigmoid", {gate(g.add("relu", {linear(y, 16, 10, "fc2")}), 10, "sig")});
  // The supported pattern.
  y = gate(g.add("relu", {linear(y, 10, 12, "fc3")}), 12, "ok");
  g.set_output(linear(y, 12, 4, "fc4"));

  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "neuron_gate"), 2);
  EXPECT_TRUE(c.params().count("res.gates"));
  EXPECT_TRUE(c.params().count("sig.gates"));
  EXPECT_FALSE(c.params().count("ok.gates"));
  EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{16, 16}));
  EXPECT_EQ(param_shape(c, "fc2.weight"), (Shape{10, 16}));
  EXPECT_EQ(param_shape(c, "fc3.weight"), (Shape{6, 10}));
  EXPECT_EQ(param_shape(c, "fc4.weight"), (Shape{4, 6}));
  EXPECT_LT(output_difference(g, c, random_tensor({5, 16}, 9)), kTolerance);
}

TEST(CompactGates, KeepsAGateWhoseValueIsReadTwiceOrIsTheOutput) {
  Graph g;
  NetBuilder nb(g, 3);
  Rng rng(4);
  int x = g.add_input("input", {6});
  int h = g.add("relu", {g.add("linear", {x, nb.param("fc1.weight", {8, 6}, 0.3f), nb.param("fc1.bias", {8}, 0.1f)})});
  const GateParams p = add_gate_params(g, "gate1", 8, 0.5, rng);
  int gated = g.add("neuron_gate", {h, p.gates, p.sparsity});
  int a = g.add("linear", {gated, nb.param("fc2.weight", {3, 8}, 0.3f)});
  int b = g.add("linear", {gated, nb.param("fc3.weight", {3, 8}, 0.3f)});
  g.set_output(g.add("add", {a, b}));
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "neuron_gate"), 1);
  EXPECT_LT(output_difference(g, c, random_tensor({4, 6}, 5)), kTolerance);

  Graph last;
  int in = last.add_input("input", {5});
  const GateParams q = add_gate_params(last, "gate1", 5, 0.5, rng);
  last.set_output(last.add("neuron_gate", {in, q.gates, q.sparsity}));
  EXPECT_EQ(count_op(compact_gates(last), "neuron_gate"), 1);
}

TEST(CompactGates, DropsAGateWithNothingOff) {
  Graph g = gated_mlp(0.0);
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "neuron_gate"), 0);
  EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{32, 20}));
  EXPECT_LT(output_difference(g, c, random_tensor({2, 20}, 6)), kTolerance);
}

TEST(CompactGates, RunsInOptimizeForInferenceAndThePlan) {
  for (const char* preset : {"mlp", "cnn", "cnn-bn"}) {
    SCOPED_TRACE(preset);
    Graph g = with_gates(build_preset(preset, {1, 12, 12}, 10, 3), 0.7, 5);
    randomize(g, 300);
    const Tensor x = random_tensor({4, 1, 12, 12}, 8);
    Graph o = optimize_for_inference(g);
    EXPECT_EQ(count_op(o, "neuron_gate"), 0);
    EXPECT_LT(output_difference(g, o, x), kTolerance);
    CompileOptions untimed;
    untimed.tune = false;
    Plan plan(g, untimed);
    Executor ex(g);
    EXPECT_LT(max_abs_diff(ex.forward({x}), plan.run(x)), 1e-4);
    EXPECT_EQ(count_op(plan.graph(), "neuron_gate"), 0);
  }
}

// ---------------------------------------------------------------------------
// Sparsity schedule

TEST(SparsitySchedule, RampsCubicallyToTheTarget) {
  const SparsitySchedule sched{0.7, 100};
  EXPECT_DOUBLE_EQ(sched.at(0), 0.0);
  EXPECT_DOUBLE_EQ(sched.at(50), 0.7 * (1 - 0.125));  // 1 - (1/2)^3
  EXPECT_DOUBLE_EQ(sched.at(25), 0.7 * (1 - 0.75 * 0.75 * 0.75));
  EXPECT_DOUBLE_EQ(sched.at(100), 0.7);
  EXPECT_DOUBLE_EQ(sched.at(1000), 0.7);
  // Rises every step, by less each time: fastest early.
  for (int64_t t = 1; t < 100; ++t) {
    const double rise = sched.at(t) - sched.at(t - 1), next = sched.at(t + 1) - sched.at(t);
    EXPECT_GT(rise, 0.0) << "step " << t;
    EXPECT_LT(next, rise) << "step " << t;
  }
  EXPECT_DOUBLE_EQ(SparsitySchedule({0.5, 0}).at(0), 0.5);
  EXPECT_THROW(SparsitySchedule({1.0, 10}).at(0), Error);
  EXPECT_THROW(SparsitySchedule({-0.1, 10}).at(0), Error);
  EXPECT_THROW(SparsitySchedule({0.5, -1}).at(0), Error);
}

TEST(SparsitySchedule, ApplySparsityWritesEveryGate) {
  Graph g = gated_cnn(0.5);
  apply_sparsity(g, 0.25);
  EXPECT_EQ(g.params().at("gate1.sparsity").value.data<float>()[0], 0.25f);
  EXPECT_EQ(g.params().at("gate2.sparsity").value.data<float>()[0], 0.25f);
  Graph c = compact_gates(g);
  EXPECT_EQ(param_shape(c, "conv1.weight")[0], kept(8, 0.25));
  EXPECT_THROW(apply_sparsity(g, 1.0), Error);
}

// ---------------------------------------------------------------------------
// Builder, spec and with_gates

TEST(GateLayers, SpecBuildsAGateAndChecksSparsity) {
  const json spec = json::parse(R"({"layers": [{"type": "linear", "out": 10}, {"type": "relu"},
      {"type": "gate", "sparsity": 0.7}, {"type": "linear"}]})");
  Graph g = build_from_spec(spec, {4}, 3, 1);
  EXPECT_EQ(count_op(g, "neuron_gate"), 1);
  EXPECT_EQ(param_shape(g, "gate1.gates"), (Shape{10}));
  EXPECT_FLOAT_EQ(g.params().at("gate1.sparsity").value.data<float>()[0], 0.7f);
  EXPECT_FALSE(g.params().at("gate1.sparsity").trainable);
  EXPECT_TRUE(g.params().at("gate1.gates").trainable);
  // Ones plus tiny noise: no ties, every gate near 1.
  const Tensor& gates = g.params().at("gate1.gates").value;
  std::vector<float> v(gates.data<float>(), gates.data<float>() + 10);
  std::sort(v.begin(), v.end());
  EXPECT_TRUE(std::adjacent_find(v.begin(), v.end()) == v.end());
  EXPECT_GT(v.front(), 0.99f);
  EXPECT_LT(v.back(), 1.01f);

  auto bad = [](const std::string& layer) {
    return json::parse(R"({"layers": [{"type": "linear", "out": 10}, )" + layer + R"(, {"type": "linear"}]})");
  };
  test_support::expect_error([&] { build_from_spec(bad(R"({"type": "gate"})"), {4}, 3, 1); }, {"needs 'sparsity'"});
  test_support::expect_error([&] { build_from_spec(bad(R"({"type": "gate", "sparsity": 1.0})"), {4}, 3, 1); }, {"[0, 1)"});
  test_support::expect_error([&] { build_from_spec(bad(R"({"type": "gate", "sparsity": "high"})"), {4}, 3, 1); }, {"number"});
  test_support::expect_error([&] { build_from_spec(bad(R"({"type": "gate", "sparsity": 0.5, "k": 2})"), {4}, 3, 1); },
                             {"unknown key 'k'"});
}

TEST(GateLayers, ModelFileKeepsGatesAndTheCurrentSparsity) {
  Graph g = gated_mlp(0.7);
  apply_sparsity(g, 0.6);
  TempDir dir;
  save_model(dir.file("gated.leanai"), g, json::object());
  LoadedModel m = load_model(dir.file("gated.leanai"));
  EXPECT_EQ(count_op(m.graph, "neuron_gate"), 2);
  EXPECT_FLOAT_EQ(m.graph.params().at("gate2.sparsity").value.data<float>()[0], 0.6f);
  EXPECT_FALSE(m.graph.params().at("gate2.sparsity").trainable);
  EXPECT_EQ(output_difference(g, m.graph, random_tensor({3, 20}, 1)), 0.0);
}

// The op read by each gate, in graph order.
std::vector<std::string> gated_ops(const Graph& g) {
  std::vector<std::string> ops;
  for (const Node& n : g.nodes())
    if (n.op == "neuron_gate") ops.push_back(g.node(n.inputs[0]).op);
  return ops;
}

TEST(GateLayers, WithGatesGatesEveryHiddenActivationOfThePresets) {
  struct Expect {
    const char* preset;
    std::vector<int64_t> channels;
  };
  for (const Expect& e : {Expect{"mlp", {512, 256}}, Expect{"cnn", {32, 64, 128}}, Expect{"cnn-bn", {32, 64, 256}}}) {
    SCOPED_TRACE(e.preset);
    Graph dense = build_preset(e.preset, {1, 28, 28}, 10, 0);
    Graph g = with_gates(dense, 0.7);
    EXPECT_EQ(gated_ops(g), std::vector<std::string>(e.channels.size(), "relu"));
    for (size_t i = 0; i < e.channels.size(); ++i) {
      const std::string name = "gate" + std::to_string(i + 1);
      EXPECT_EQ(param_shape(g, name + ".gates"), (Shape{e.channels[i]}));
      EXPECT_FLOAT_EQ(g.params().at(name + ".sparsity").value.data<float>()[0], 0.7f);
    }
    EXPECT_EQ(g.node(g.output()).op, "linear");  // the output layer is not gated
    EXPECT_EQ(g.params().size(), dense.params().size() + 2 * e.channels.size());
    // Gating twice adds nothing.
    EXPECT_EQ(count_op(with_gates(g, 0.5), "neuron_gate"), static_cast<int>(e.channels.size()));
    // Trainable: a forward and backward pass in training runs.
    Executor ex(g);
    ex.set_training(true);
    ex.forward({random_tensor({2, 1, 28, 28}, 1)});
    ex.backward(random_tensor({2, 10}, 2));
    double norm = 0;
    for (int64_t c = 0; c < e.channels[0]; ++c) norm += std::abs(ex.grad("gate1.gates").data<float>()[c]);
    EXPECT_GT(norm, 0.0);
    // Compacted, the model does a fraction of the dense FLOPs.
    Executor dense_ex(dense);
    EXPECT_LT(active_flops_per_sample(g), 0.6 * dense_ex.flops_per_sample());
  }
}

TEST(GateLayers, DenseLayersStayUngated) {
  Graph dense = build_preset("cnn-bn", {1, 28, 28}, 10, 0);
  Graph g = with_gates(dense, 0.7, 0, {"conv1"});
  // conv1's 32 channels pass ungated; conv2's 64 and fc1's 256 are gated.
  ASSERT_EQ(count_op(g, "neuron_gate"), 2);
  EXPECT_EQ(param_shape(g, "gate1.gates"), (Shape{64}));
  EXPECT_EQ(param_shape(g, "gate2.gates"), (Shape{256}));
  EXPECT_EQ(count_op(with_l0_gates(dense, 0, {"conv1", "fc1"}), "l0_gate"), 1);
  expect_error([&] { with_gates(dense, 0.7, 0, {"conv7"}); }, {"'conv7'", "conv1, conv2, fc1"});
  expect_error([&] { with_gates(dense, 0.7, 0, {"fc2"}); }, {"'fc2'", "not a hidden layer"});  // the output layer

  // The choice travels with the model's sparsity record, for resuming.
  SparseTraining sparse{"quantile", 0.7, 100};
  sparse.dense_layers = {"conv1"};
  const SparseTraining back = SparseTraining::from_json(json::parse(sparse.to_json().dump()));
  EXPECT_EQ(back.dense_layers, sparse.dense_layers);
  EXPECT_EQ(count_op(back.gate(dense, 0), "neuron_gate"), 2);
  SparseTraining input{"input", 0.7, 0};
  input.dense_layers = {"fc1"};
  expect_error([&] { input.gate(dense, 0); }, {"input gates"});
}

// ---------------------------------------------------------------------------
// Training with 70% of the hidden neurons off

TEST(GatedTraining, KeepsLearningWith70PercentOfHiddenNeuronsOff) {
  set_num_threads(1);
  auto train = blobs(2000, 2), test = blobs(1000, 3);
  ModelBuilder b({16}, 0);
  b.linear(64).activation("relu").gate(0.0).linear(64).activation("relu").gate(0.0).linear(8);
  Graph model = b.finish();
  const Tensor gates_before = model.params().at("gate1.gates").value.clone();

  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.batch_size = 50;
  cfg.optimizer.lr = 3e-3f;
  Trainer trainer(model, Task::classification, 8, cfg);
  const SparsitySchedule sched{0.7, 80};  // reaches 70% two epochs in (40 steps an epoch)
  std::vector<int64_t> steps;
  trainer.before_step = [&](int64_t step) {
    steps.push_back(step);
    apply_sparsity(model, sched.at(step));
  };
  for (int e = 0; e < cfg.epochs; ++e) trainer.train_epoch(train);
  ASSERT_EQ(steps.size(), 160u);
  for (size_t i = 0; i < steps.size(); ++i) ASSERT_EQ(steps[i], static_cast<int64_t>(i));
  EXPECT_FLOAT_EQ(model.params().at("gate1.sparsity").value.data<float>()[0], 0.7f);

  // 70% off: 20 of 64 neurons on in each hidden layer (64 - floor(44.8)).
  for (const char* name : {"gate1.gates", "gate2.gates"}) {
    const Tensor& gates = model.params().at(name).value;
    const std::vector<bool> on = active_channels(gates.data<float>(), 64, 0.7f);
    EXPECT_EQ(std::count(on.begin(), on.end(), true), 20) << name;
  }
  const EvalResult r = evaluate(model, *test);
  EXPECT_GT(r.accuracy, 0.85) << "chance is 0.125";

  // The gates learned: they moved far beyond their 1e-3 initial noise.
  double moved = 0;
  const Tensor& gates = model.params().at("gate1.gates").value;
  for (int64_t c = 0; c < 64; ++c) moved = std::max(moved, std::abs(double(gates.data<float>()[c]) - gates_before.data<float>()[c]));
  EXPECT_GT(moved, 0.05);

  // The compacted model is the same classifier.
  Graph compact = compact_gates(model);
  EXPECT_EQ(param_shape(compact, "fc2.weight"), (Shape{20, 20}));
  EXPECT_NEAR(evaluate(compact, *test).accuracy, r.accuracy, 0.002);  // rounding may flip a near tie
}

// The Trainer fuses conv -> [bn] -> relu chains (fuse_conv_blocks); a gate
// after the relu ends the chain and still trains.
TEST(GatedTraining, GatedConvPresetsTrainThroughTheTrainer) {
  Rng rng(4);
  Tensor x = random_tensor({64, 1, 12, 12}, 5);
  Tensor y = Tensor::empty({64}, DType::i64);
  for (int64_t i = 0; i < 64; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(rng.below(3));
  auto data = std::make_shared<InMemoryDataset>(x, y, Task::classification, 3);
  for (const char* preset : {"cnn", "cnn-bn"}) {
    SCOPED_TRACE(preset);
    Graph model = with_gates(build_preset(preset, {1, 12, 12}, 3, 1), 0.5);
    const Tensor before = model.params().at("gate2.gates").value.clone();
    TrainConfig cfg;
    cfg.epochs = 1;
    cfg.batch_size = 16;
    Trainer trainer(model, Task::classification, 3, cfg);
    const EpochStats e = trainer.train_epoch(data);
    EXPECT_TRUE(std::isfinite(e.train_loss));
    EXPECT_GT(max_abs_diff(before, model.params().at("gate2.gates").value), 0.0);
  }
}

}  // namespace
}  // namespace leanai
