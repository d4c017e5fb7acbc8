// Hard-concrete L0 gates in models: with_l0_gates on the presets; compaction
// removes closed neurons and folds the others' z (outputs unchanged); the
// controller keeps the closed share at its target; a small MLP trained with
// L0 gates ends with 70% of its hidden neurons closed and still classifies;
// the sparse-training setup `leanai train` uses.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "blob_data.h"
#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/l0_controller.h"
#include "leanai/nn/model_builder.h"
#include "leanai/nn/models.h"
#include "leanai/nn/sparse_training.h"
#include "leanai/nn/trainer.h"
#include "leanai/runtime/plan.h"
#include "leanai/sparse/hard_concrete.h"
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
Tensor& param_value(Graph& g, const std::string& name) { return g.params().at(name).value; }

// Eval gates of one l0_gate's log_alpha.
std::vector<double> eval_gates(const Graph& g, const std::string& gate) {
  const Tensor& a = g.params().at(gate + ".log_alpha").value;
  std::vector<double> z;
  for (int64_t c = 0; c < a.numel(); ++c) z.push_back(HardConcrete().eval_gate(a.data<float>()[c]));
  return z;
}

int64_t open_count(const Graph& g, const std::string& gate) {
  const std::vector<double> z = eval_gates(g, gate);
  return std::count_if(z.begin(), z.end(), [](double v) { return v > 0.0; });
}

// log_alpha spread over closed (z = 0), partly open and fully open (z = 1)
// gates, away from the clamp points +-log(11); plus random weights and
// batch-norm statistics.
void randomize(Graph& g, uint64_t seed) {
  for (auto& [name, p] : g.params()) {
    float* v = p.value.data<float>();
    Tensor r = random_tensor(p.value.shape(), seed++, 0.3f);
    if (name.ends_with(".log_alpha")) {
      Rng rng(seed++);
      for (int64_t i = 0; i < p.value.numel(); ++i) {
        float a;
        do a = rng.uniform(-5.0f, 5.0f); while (std::fabs(std::fabs(a) - std::log(11.0f)) < 0.1f);
        v[i] = a;
      }
    } else if (name.ends_with("running_mean") || name.ends_with(".bias")) {
      p.value.copy_from(r);
    } else if (name.ends_with("running_var") || (name.starts_with("bn") && name.ends_with(".weight"))) {
      for (int64_t i = 0; i < p.value.numel(); ++i) v[i] = 0.6f + std::abs(r.data<float>()[i]);
    }
  }
}

// input [20] -> fc1(32) -> relu -> gate1 -> fc2(24) -> relu -> gate2 -> fc3(5)
Graph l0_mlp(uint64_t seed = 100) {
  ModelBuilder b({20}, 1);
  b.linear(32).activation("relu").linear(24).activation("relu").linear(5);
  Graph g = with_l0_gates(b.finish(), 1);
  randomize(g, seed);
  return g;
}

// input [3, 8, 8] -> conv1(8) -> bn1 -> relu -> gate1 -> maxpool 2 -> conv2(12) -> relu -> gate2 -> flatten -> fc1(5)
Graph l0_cnn() {
  ModelBuilder b({3, 8, 8}, 2);
  b.conv2d(8, 3, 1, 1).batchnorm().activation("relu").maxpool2d(2);
  b.conv2d(12, 3, 1, 1).activation("relu").flatten().linear(5);
  Graph g = with_l0_gates(b.finish(), 2);
  randomize(g, 200);
  return g;
}

// ---------------------------------------------------------------------------
// with_l0_gates

TEST(L0Layers, WithL0GatesGatesEveryHiddenActivationOfThePresetsOpen) {
  struct Expect {
    const char* preset;
    std::vector<int64_t> channels;
  };
  for (const Expect& e : {Expect{"mlp", {512, 256}}, Expect{"cnn", {32, 64, 128}}, Expect{"cnn-bn", {32, 64, 256}}}) {
    SCOPED_TRACE(e.preset);
    Graph dense = build_preset(e.preset, {1, 28, 28}, 10, 0);
    Graph g = with_l0_gates(dense, 3);
    EXPECT_EQ(count_op(g, "l0_gate"), static_cast<int>(e.channels.size()));
    for (size_t i = 0; i < e.channels.size(); ++i) {
      const std::string name = "gate" + std::to_string(i + 1);
      EXPECT_EQ(param_shape(g, name + ".log_alpha"), (Shape{e.channels[i]}));
      EXPECT_TRUE(g.params().at(name + ".log_alpha").trainable);
      EXPECT_FALSE(g.params().at(name + ".l0_weight").trainable);
      EXPECT_EQ(param_value(g, name + ".l0_weight").data<float>()[0], 0.0f);
      // Open at the start: eval gates about 0.9.
      for (double z : eval_gates(g, name)) EXPECT_NEAR(z, kL0InitialGate, 0.01);
    }
    EXPECT_EQ(g.node(g.output()).op, "linear");  // the output layer is not gated
    EXPECT_EQ(count_op(with_l0_gates(g), "l0_gate"), static_cast<int>(e.channels.size()));  // gating twice adds nothing
    EXPECT_EQ(count_op(with_gates(g, 0.5), "neuron_gate"), 0);
    // Trainable: gradients reach log_alpha.
    Executor ex(g);
    ex.set_training(true);
    ex.forward({random_tensor({2, 1, 28, 28}, 1)});
    ex.backward(random_tensor({2, 10}, 2));
    double norm = 0;
    for (int64_t c = 0; c < e.channels[0]; ++c) norm += std::abs(ex.grad("gate1.log_alpha").data<float>()[c]);
    EXPECT_GT(norm, 0.0);
  }
}

// ---------------------------------------------------------------------------
// compact_gates on l0_gate

TEST(CompactL0Gates, MlpRemovesClosedNeuronsFoldsTheRestAndKeepsOutputs) {
  Graph g = l0_mlp();
  const int64_t a = open_count(g, "gate1"), b = open_count(g, "gate2");
  ASSERT_GT(a, 0);
  ASSERT_LT(a, 32);
  ASSERT_LT(b, 24);
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "l0_gate"), 0);
  EXPECT_EQ(count_op(c, "mul"), 0);  // relu passes z: it folds into the next layer
  EXPECT_FALSE(c.params().count("gate1.log_alpha"));
  EXPECT_FALSE(c.params().count("gate2.l0_penalty"));
  EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{a, 20}));
  EXPECT_EQ(param_shape(c, "fc2.weight"), (Shape{b, a}));
  EXPECT_EQ(param_shape(c, "fc3.weight"), (Shape{5, b}));
  EXPECT_LT(output_difference(g, c, random_tensor({7, 20}, 3)), kTolerance);
  EXPECT_EQ(param_shape(g, "fc1.weight"), (Shape{32, 20}));  // the input graph is untouched
}

TEST(CompactL0Gates, CnnWithBatchNormPoolingAndFlattenKeepsOutputs) {
  Graph g = l0_cnn();
  const int64_t a = open_count(g, "gate1"), b = open_count(g, "gate2");
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "l0_gate"), 0);
  EXPECT_EQ(param_shape(c, "conv1.weight"), (Shape{a, 3, 3, 3}));
  EXPECT_EQ(param_shape(c, "bn1.running_var"), (Shape{a}));
  EXPECT_EQ(param_shape(c, "conv2.weight"), (Shape{b, a, 3, 3}));
  EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{5, b * 4 * 4}));
  EXPECT_LT(output_difference(g, c, random_tensor({3, 3, 8, 8}, 4)), kTolerance);
}

TEST(CompactL0Gates, KeepsAMultiplyWhereZCannotFold) {
  // tanh after the gate: tanh(z x) != z tanh(x), but tanh(0) = 0, so closed
  // neurons still go and the open ones keep their z as a multiply.
  Graph g;
  Rng rng(3);
  int h = g.add("linear", {g.add_input("input", {6}), g.add_param("fc1.weight", random_tensor({10, 6}, 1, 0.4f)),
                           g.add_param("fc1.bias", Tensor::zeros({10}))});
  const L0GateParams p = add_l0_gate_params(g, "gate1", 10, rng);
  h = g.add("l0_gate", {g.add("relu", {h}), p.log_alpha, p.l0_weight, p.l0_penalty}, json::object(), "gate1");
  h = g.add("tanh", {h});
  g.set_output(g.add("linear", {h, g.add_param("fc2.weight", random_tensor({3, 10}, 2, 0.4f)), g.add_param("fc2.bias", Tensor::zeros({3}))}));
  randomize(g, 30);
  const int64_t open = open_count(g, "gate1");
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "l0_gate"), 0);
  EXPECT_EQ(count_op(c, "mul"), 1);
  EXPECT_EQ(param_shape(c, "gate1.scale"), (Shape{open}));
  EXPECT_EQ(param_shape(c, "fc2.weight"), (Shape{3, open}));
  EXPECT_LT(output_difference(g, c, random_tensor({5, 6}, 5)), kTolerance);
}

TEST(CompactL0Gates, AllOpenIsDroppedAllClosedStays) {
  Graph g = l0_mlp();
  param_value(g, "gate1.log_alpha").fill(5.0f);   // z = 1 everywhere: an identity
  param_value(g, "gate2.log_alpha").fill(-5.0f);  // z = 0 everywhere: would leave zero-width layers
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "l0_gate"), 1);
  EXPECT_TRUE(c.params().count("gate2.log_alpha"));
  EXPECT_EQ(param_shape(c, "fc1.weight"), (Shape{32, 20}));
  EXPECT_LT(output_difference(g, c, random_tensor({4, 20}, 6)), kTolerance);
}

TEST(CompactL0Gates, ActiveFlopsAreThoseOfTheSmallerDenseModel) {
  Graph g = l0_mlp();
  ModelBuilder b({20}, 1);
  b.linear(open_count(g, "gate1")).activation("relu").linear(open_count(g, "gate2")).activation("relu").linear(5);
  Graph small = b.finish();
  Executor small_ex(small);
  EXPECT_DOUBLE_EQ(active_flops_per_sample(g), small_ex.flops_per_sample());
}

TEST(CompactL0Gates, RunsInOptimizeForInferenceAndThePlan) {
  for (const char* preset : {"mlp", "cnn", "cnn-bn"}) {
    SCOPED_TRACE(preset);
    Graph g = with_l0_gates(build_preset(preset, {1, 12, 12}, 10, 3), 5);
    randomize(g, 300);
    const Tensor x = random_tensor({4, 1, 12, 12}, 8);
    Graph o = optimize_for_inference(g);
    EXPECT_EQ(count_op(o, "l0_gate"), 0);
    EXPECT_LT(output_difference(g, o, x), kTolerance);
    CompileOptions untimed;
    untimed.tune = false;
    Plan plan(g, untimed);
    Executor ex(g);
    EXPECT_LT(max_abs_diff(ex.forward({x}), plan.run(x)), 1e-4);
  }
}

TEST(L0Layers, ModelFileKeepsGatesAndBuffers) {
  Graph g = l0_mlp();
  param_value(g, "gate1.l0_weight").fill(0.25f);
  TempDir dir;
  save_model(dir.file("l0.leanai"), g, json::object());
  LoadedModel m = load_model(dir.file("l0.leanai"));
  EXPECT_EQ(count_op(m.graph, "l0_gate"), 2);
  EXPECT_FLOAT_EQ(m.graph.params().at("gate1.l0_weight").value.data<float>()[0], 0.25f);
  EXPECT_FALSE(m.graph.params().at("gate1.l0_penalty").trainable);
  EXPECT_EQ(output_difference(g, m.graph, random_tensor({3, 20}, 1)), 0.0);
}

// ---------------------------------------------------------------------------
// L0Controller

TEST(L0Controller, ProjectsAllButTheKSmallestAndMovesLambda) {
  Graph g = l0_mlp();
  Tensor& a = param_value(g, "gate1.log_alpha");
  for (int64_t c = 0; c < 32; ++c) a.data<float>()[c] = -4.0f + 0.25f * static_cast<float>(c);  // -4 .. 3.75, ascending
  const double open = HardConcrete().log_alpha_for(0.9), closing = HardConcrete().closed_below();
  L0Controller ctl;
  ctl.update(g, 0.5);  // k = 16: a_16 = -0.25 > closing: too few closed, raise lambda
  for (int64_t c = 16; c < 32; ++c) EXPECT_GE(a.data<float>()[c], open - 1e-6) << "channel " << c;
  for (int64_t c = 0; c < 16; ++c) EXPECT_EQ(a.data<float>()[c], -4.0f + 0.25f * static_cast<float>(c)) << "channel " << c;
  const float raised = param_value(g, "gate1.l0_weight").data<float>()[0];
  EXPECT_NEAR(raised, ctl.floor * std::exp(ctl.rate), 1e-6);
  ctl.update(g, 0.5);
  EXPECT_GT(param_value(g, "gate1.l0_weight").data<float>()[0], raised);

  // 16 closed and the rest clear of the floor: hold.
  for (int64_t c = 0; c < 16; ++c) a.data<float>()[c] = static_cast<float>(closing) - 1.0f;
  for (int64_t c = 16; c < 32; ++c) a.data<float>()[c] = 3.0f;
  const float held = param_value(g, "gate1.l0_weight").data<float>()[0];
  ctl.update(g, 0.5);
  EXPECT_EQ(param_value(g, "gate1.l0_weight").data<float>()[0], held);
  // The next gate presses against the floor: lower, down to 0.
  a.data<float>()[16] = static_cast<float>(open);
  for (int i = 0; i < 2000; ++i) ctl.update(g, 0.5);
  EXPECT_EQ(param_value(g, "gate1.l0_weight").data<float>()[0], 0.0f);
  EXPECT_EQ(l0_gate_stats(g)[0].closed, 16);

  expect_error([&] { ctl.update(g, 1.0); }, {"[0, 1)"});
}

// A 16-64-64-8 MLP with L0 gates after both hidden layers, trained with a
// ramped target of 70%: each layer ends with exactly floor(0.7 * 64) = 44
// gates closed, still classifies the eight blobs, and the compacted model
// (20 neurons per layer, z folded into the next layer) gives the same outputs.
TEST(L0Training, ReachesTheTargetShareOfClosedGatesAndCompacts) {
  set_num_threads(1);
  auto train = blobs(2000, 2), test = blobs(1000, 3);
  ModelBuilder b({16}, 0);
  b.linear(64).activation("relu").linear(64).activation("relu").linear(8);
  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.batch_size = 50;
  cfg.optimizer.lr = 3e-3f;
  cfg.schedule.total = 160;              // 40 steps an epoch, as leanai train sets it
  SparseTraining sparse("l0", 0.7, 80);  // the target reaches 70% two epochs in
  Graph model = sparse.gate(b.finish(), 0);
  sparse.configure(cfg);
  // 160 steps is short: log_alpha learns at 16 / (lr * steps) = 33 times lr.
  EXPECT_NEAR(cfg.optimizer.lr_scale.at(".log_alpha"), 16.0 / (3e-3 * 160), 1e-3);
  Trainer trainer(model, Task::classification, 8, cfg);
  trainer.before_step = [&](int64_t step) { sparse.before_step(model, step); };
  for (int e = 0; e < cfg.epochs; ++e) trainer.train_epoch(train);
  sparse.finish(model);

  for (const L0GateStats& s : l0_gate_stats(model)) EXPECT_EQ(s.closed, 44) << s.name;
  EXPECT_NEAR(l0_closed_share(model), 44.0 / 64.0, 1e-12);
  const json achieved = sparse.achieved(model);
  EXPECT_NEAR(achieved.at("off_share").get<double>(), 44.0 / 64.0, 1e-12);
  const EvalResult r = evaluate(model, *test);
  EXPECT_GT(r.accuracy, 0.85) << "chance is 0.125";

  Graph compact = compact_gates(model);
  EXPECT_EQ(count_op(compact, "l0_gate"), 0);
  EXPECT_EQ(param_shape(compact, "fc2.weight"), (Shape{20, 20}));
  Tensor x = Tensor::empty({200, 16});
  std::copy_n(test->features().data<float>(), x.numel(), x.data<float>());
  EXPECT_LT(output_difference(model, compact, x), kTolerance);
  EXPECT_NEAR(evaluate(compact, *test).accuracy, r.accuracy, 0.002);  // rounding may flip a near tie
}

// ---------------------------------------------------------------------------
// SparseTraining: what `leanai train --sparsity S --gates G` sets up

TEST(SparseTraining, RecordRoundTripsAndOlderRecordsAreQuantile) {
  SparseTraining s("l0", 0.7, 120);
  TrainConfig long_run;
  long_run.schedule.total = 100000;
  s.configure(long_run);  // a long run: the least rates
  EXPECT_EQ(long_run.optimizer.lr_scale.at(".log_alpha"), kL0GateLrScale);
  EXPECT_EQ(s.to_json().at("controller_rate"), L0Controller().rate);
  TrainConfig short_run;
  short_run.schedule.total = 240;
  s.configure(short_run);
  EXPECT_NEAR(s.to_json().at("controller_rate").get<double>(), 18.0 / 240, 1e-12);
  const SparseTraining back = SparseTraining::from_json(s.to_json());
  EXPECT_EQ(back.gates, "l0");
  EXPECT_EQ(back.target, 0.7);
  EXPECT_EQ(back.ramp_steps, 120);
  EXPECT_EQ(back.to_json(), s.to_json());  // the controller's rate too: a resumed run steers the same way
  EXPECT_EQ(SparseTraining::from_json({{"target", 0.5}, {"ramp_steps", 10}}).gates, "quantile");
  const json input = SparseTraining("input", 0.7, 0).to_json();
  EXPECT_EQ(input.at("top_k"), 2);
  EXPECT_EQ(input.at("blocks"), 8);
  expect_error([] { SparseTraining::from_json({{"gates", "l0"}}); }, {"incomplete"});
  expect_error([] { SparseTraining("magic", 0.5, 0).gate(build_preset("mlp", {4}, 2, 0), 0); }, {"quantile, l0 or input"});
  expect_error([] { SparseTraining("l0", 1.0, 0).gate(build_preset("mlp", {4}, 2, 0), 0); }, {"[0, 1)"});
  TrainConfig c;
  SparseTraining("quantile", 0.5, 0).configure(c);
  EXPECT_TRUE(c.optimizer.lr_scale.empty());
}

TEST(SparseTraining, EachKindGatesTheModelItsWay) {
  const Graph dense = build_preset("mlp", {16}, 4, 0);
  EXPECT_EQ(count_op(SparseTraining("quantile", 0.7, 0).gate(dense, 0), "neuron_gate"), 2);
  EXPECT_EQ(count_op(SparseTraining("l0", 0.7, 0).gate(dense, 0), "l0_gate"), 2);
  EXPECT_EQ(count_op(SparseTraining("input", 0.7, 0).gate(dense, 0), "block_gated_linear"), 2);
}

}  // namespace
}  // namespace leanai
