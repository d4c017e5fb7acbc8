// Tests for data-efficient training: the closed-form last-layer gradient norm
// against autograd, the value combination and forgetting events on hand-made
// cases, dynamic pruning's schedule, the loader's row subsets, and the
// Trainer's sample schedules and augmentation end to end on small data.
#include <gtest/gtest.h>

#include "expect_error.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/batch_loader.h"
#include "leanai/graph/executor.h"
#include "leanai/nn/data_efficiency.h"
#include "leanai/nn/model_builder.h"
#include "leanai/nn/sample_schedule.h"
#include "leanai/nn/trainer.h"
#include "leanai/nn/valuation.h"

using namespace leanai;
using leanai::test_support::expect_error;

namespace {

// Two Gaussian blobs per class in `dim` dimensions; the first `flipped` rows
// get a wrong label (the hard, likely-mislabeled samples a value score should find).
std::shared_ptr<InMemoryDataset> blobs(int64_t n, int64_t dim, int64_t classes, int64_t flipped, uint64_t seed,
                                       Shape sample_shape = {}) {
  Rng rng(seed);
  if (sample_shape.empty()) sample_shape = {dim};
  Shape xs = sample_shape;
  xs.insert(xs.begin(), n);
  Tensor x = Tensor::empty(xs), y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % classes;
    for (int64_t k = 0; k < dim; ++k)
      x.data<float>()[i * dim + k] = rng.normal() + (k % classes == c ? 2.5f : 0.0f);
    y.data<int64_t>()[i] = i < flipped ? (c + 1) % classes : c;
  }
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, classes);
}

Graph small_mlp(int64_t dim, int64_t classes, uint64_t seed) {
  ModelBuilder b({dim}, seed);
  b.linear(16).activation("relu").linear(classes);
  return b.finish();
}

// ---------------------------------------------------------------------------
// Closed-form scores
// ---------------------------------------------------------------------------

TEST(Valuation, ClosedFormGradNormEqualsAutogradPerSample) {
  const int64_t dim = 6, classes = 4;
  Graph model = small_mlp(dim, classes, 3);
  const int features = last_linear_input(model);
  const Node& last = model.node(model.output());
  const std::string w_name = model.node(last.inputs[1]).name, b_name = model.node(last.inputs[2]).name;
  // The training graph of one sample: the loss is that sample's loss.
  Graph g = model;
  const int labels = g.add_input("labels", {}, DType::i64);
  g.set_output(g.add("cross_entropy", {model.output(), labels}));
  Executor ex(g);
  ex.set_training(true);
  Rng rng(7);
  for (int sample = 0; sample < 8; ++sample) {
    Tensor x = Tensor::empty({1, dim}), y = Tensor::empty({1}, DType::i64);
    for (int64_t k = 0; k < dim; ++k) x.data<float>()[k] = 2.0f * rng.normal();
    y.data<int64_t>()[0] = sample % classes;
    ex.forward({x, y});
    ex.backward();
    double autograd = 0.0;
    for (const std::string& name : {w_name, b_name}) {
      const Tensor& gr = ex.grad(name);
      for (int64_t i = 0; i < gr.numel(); ++i) autograd += static_cast<double>(gr.data<float>()[i]) * gr.data<float>()[i];
    }
    autograd = std::sqrt(autograd);
    const Tensor& logits = ex.value(model.output());
    const Tensor& h = ex.value(features);
    float entropy, el2n, grad;
    score_rows(logits.data<float>(), 1, classes, y.data<int64_t>(), h.data<float>(), h.numel(), true, &entropy, &el2n,
               &grad);
    EXPECT_NEAR(grad, autograd, 1e-5 * std::max(1.0, autograd)) << "sample " << sample;
    EXPECT_GT(grad, 0.0f);
    EXPECT_LE(el2n, std::sqrt(2.0f) + 1e-6f);
    EXPECT_LE(entropy, std::log(static_cast<float>(classes)) + 1e-5f);
  }
}

TEST(Valuation, EntropyAndEl2nOnHandMadeLogits) {
  // Uniform logits: entropy log(4); EL2N sqrt(3 * (1/4)^2 + (3/4)^2).
  const float logits[4] = {1, 1, 1, 1};
  const int64_t label = 2;
  const float h[2] = {3, 4};  // ||h|| = 5
  float entropy, el2n, grad;
  score_rows(logits, 1, 4, &label, h, 2, false, &entropy, &el2n, &grad);
  EXPECT_NEAR(entropy, std::log(4.0f), 1e-6);
  EXPECT_NEAR(el2n, std::sqrt(3 * 0.0625f + 0.5625f), 1e-6);
  EXPECT_NEAR(grad, el2n * 5.0f, 1e-5);
  score_rows(logits, 1, 4, &label, h, 2, true, &entropy, &el2n, &grad);
  EXPECT_NEAR(grad, el2n * std::sqrt(26.0f), 1e-5);
}

TEST(Valuation, LastLinearInputNeedsALinearOutput) {
  ModelBuilder b({4}, 0);
  b.linear(3).softmax();
  Graph g = b.finish();
  expect_error([&] { last_linear_input(g); }, {"linear layer", "--weights"});
}

// ---------------------------------------------------------------------------
// Combination, ranks, forgetting
// ---------------------------------------------------------------------------

TEST(Valuation, WeightedScoreOnHandMadeCase) {
  SampleScores s;
  s.resize(3);
  s.entropy = {0.1f, 0.5f, 0.3f};    // ranks 0, 1, 0.5
  s.grad_norm = {3.0f, 1.0f, 2.0f};  // ranks 1, 0, 0.5
  combine_scores(s, ValueWeights{});  // 0.6 entropy + 0.4 grad_norm
  EXPECT_NEAR(s.value[0], 0.4f, 1e-6);
  EXPECT_NEAR(s.value[1], 0.6f, 1e-6);
  EXPECT_NEAR(s.value[2], 0.5f, 1e-6);
  combine_scores(s, ValueWeights::parse("grad_norm=2"));
  EXPECT_NEAR(s.value[0], 1.0f, 1e-6);
  EXPECT_NEAR(s.value[1], 0.0f, 1e-6);
}

TEST(Valuation, PercentileRanksShareTies) {
  const std::vector<float> r = percentile_ranks({5.0f, 1.0f, 5.0f, 3.0f, 9.0f});
  // sorted: 1 (0), 3 (1), 5 5 (2, 3 -> 2.5), 9 (4); divided by 4
  EXPECT_FLOAT_EQ(r[1], 0.0f);
  EXPECT_FLOAT_EQ(r[3], 0.25f);
  EXPECT_FLOAT_EQ(r[0], 0.625f);
  EXPECT_FLOAT_EQ(r[2], 0.625f);
  EXPECT_FLOAT_EQ(r[4], 1.0f);
}

TEST(Valuation, WeightsParseAndReject) {
  const ValueWeights w = ValueWeights::parse("entropy=0.5,forgetting=0.25");
  EXPECT_EQ(w.entropy, 0.5);
  EXPECT_EQ(w.forgetting, 0.25);
  EXPECT_EQ(w.grad_norm, 0.0);
  expect_error([] { ValueWeights::parse("loss=1"); }, {"unknown score 'loss'"});
  expect_error([] { ValueWeights::parse("entropy=-1"); }, {"non-negative"});
  expect_error([] { ValueWeights::parse("entropy=0"); }, {"positive"});
  expect_error([] { ValueWeights::parse("entropy"); }, {"name=number"});
}

TEST(Valuation, ForgettingEventsCountCorrectToWrong) {
  ForgettingTracker t(3);
  const int64_t rows[3] = {0, 1, 2};
  const int64_t labels[3] = {0, 0, 0};
  Tensor logits = Tensor::empty({3, 2});
  auto present = [&](std::initializer_list<int> correct) {
    int r = 0;
    for (int c : correct) {
      logits.data<float>()[r * 2] = c ? 1.0f : 0.0f;
      logits.data<float>()[r * 2 + 1] = c ? 0.0f : 1.0f;
      ++r;
    }
    t.observe(rows, 3, logits, labels);
  };
  present({1, 0, 0});
  present({0, 1, 0});
  present({1, 1, 0});
  present({0, 1, 0});
  // row 0: right, wrong, right, wrong: 2 events; row 1: learned once, never forgotten;
  // row 2: never learned: maximum (2) + 1.
  EXPECT_EQ(t.events(), (std::vector<float>{2.0f, 0.0f, 3.0f}));
}

TEST(Valuation, ProxyRunRanksMislabeledSamplesHighest) {
  auto data = blobs(600, 8, 3, 30, 1);
  Graph model = small_mlp(8, 3, 2);
  TrainConfig cfg;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 1e-2f;
  ValuationConfig vc;
  vc.proxy_epochs = 3;
  vc.weights = ValueWeights::parse("el2n=1");
  const auto before = model.params().begin()->second.value.clone();
  Valuation v = value_samples(model, data, cfg, vc);
  // The proxy trains a copy: the model given is untouched.
  const Tensor& after = model.params().begin()->second.value;
  EXPECT_TRUE(std::equal(before.data<float>(), before.data<float>() + before.numel(), after.data<float>()));
  EXPECT_EQ(v.proxy_samples, 3 * 600);
  EXPECT_EQ(v.scored_samples, 3 * 600);
  // The 30 flipped labels should be (nearly) the 30 highest values.
  std::vector<int64_t> order(600);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v.scores.value[a] > v.scores.value[b]; });
  int flipped_in_top = 0;
  for (int i = 0; i < 30; ++i) flipped_in_top += order[i] < 30;
  EXPECT_GE(flipped_in_top, 25);
  for (int64_t i = 0; i < 600; ++i) EXPECT_EQ(v.scores.label[i], data->targets().data<int64_t>()[i]);
}

// ---------------------------------------------------------------------------
// Dynamic pruning
// ---------------------------------------------------------------------------

TEST(DynamicPruning, SkipsOnlyWellLearnedRowsAndRescalesTheRest) {
  const int64_t n = 4000;
  DynamicPruning p(n, {0.5, 0.25, 9});
  // First epoch: nothing observed yet, every row.
  EXPECT_EQ(static_cast<int64_t>(p.rows(0, 8).size()), n);
  std::vector<int64_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> losses(n);
  for (int64_t i = 0; i < n; ++i) losses[i] = i < n / 2 ? 0.1f : 2.0f;  // mean 1.05: the first half is well learned
  p.observe(rows.data(), n, losses.data());
  const std::vector<int64_t> kept = p.rows(1, 8);
  int64_t kept_low = 0;
  std::set<int64_t> kept_set(kept.begin(), kept.end());
  for (int64_t i = n / 2; i < n; ++i) EXPECT_TRUE(kept_set.count(i)) << "hard row " << i << " skipped";
  for (int64_t r : kept)
    if (r < n / 2) {
      ++kept_low;
      EXPECT_FLOAT_EQ(p.weight(r), 2.0f);
    } else {
      EXPECT_FLOAT_EQ(p.weight(r), 1.0f);
    }
  EXPECT_NEAR(static_cast<double>(kept_low) / (n / 2), 0.5, 0.05);
  EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
  // The final quarter of 8 epochs (6 and 7) anneals to every row, weight 1.
  EXPECT_EQ(static_cast<int64_t>(p.rows(6, 8).size()), n);
  EXPECT_FLOAT_EQ(p.weight(0), 1.0f);
  EXPECT_EQ(p.skipped_per_epoch().size(), 3u);
  EXPECT_EQ(p.skipped_per_epoch()[0], 0);
  EXPECT_EQ(p.skipped_per_epoch()[1], n - static_cast<int64_t>(kept.size()));
}

TEST(DynamicPruning, RatioZeroKeepsEverythingAndBadConfigThrows) {
  DynamicPruning p(10, {0.0, 0.0, 1});
  std::vector<int64_t> rows(10);
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> losses = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
  p.observe(rows.data(), 10, losses.data());
  EXPECT_EQ(p.rows(1, 5).size(), 10u);
  expect_error([] { DynamicPruning(10, {1.0, 0.1, 0}); }, {"ratio"});
  expect_error([] { DynamicPruning(10, {0.5, 1.5, 0}); }, {"anneal"});
  expect_error([] { FixedSubset({}, 10); }, {"empty"});
  expect_error([] { FixedSubset({3, 12}, 10); }, {"12", "outside"});
}

// ---------------------------------------------------------------------------
// Loader subsets and the Trainer
// ---------------------------------------------------------------------------

TEST(BatchLoaderRows, VisitsExactlyTheGivenRowsAndReportsThem) {
  auto data = blobs(50, 2, 2, 0, 3);
  BatchLoader loader(data, 8, true, 5);
  const std::vector<int64_t> subset = {1, 4, 9, 16, 25, 36, 49, 0, 2, 3, 7};
  loader.start_epoch(0, subset, false);
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  std::multiset<int64_t> seen;
  Batch b;
  while (loader.next(b))
    for (int64_t i = 0; i < b.size; ++i) {
      seen.insert(b.rows[i]);
      // The gathered row is the one reported.
      EXPECT_EQ(b.x.data<float>()[i * 2], data->features().data<float>()[b.rows[i] * 2]);
    }
  EXPECT_EQ(seen, std::multiset<int64_t>(subset.begin(), subset.end()));
  loader.start_epoch(1, subset, true);  // 11 rows, batch 8, the partial batch dropped
  EXPECT_EQ(loader.batches_per_epoch(), 1);
  expect_error([&] { loader.start_epoch(2, {3, 50}, false); }, {"row 50", "outside"});
}

TEST(TrainerSchedules, SubsetAndDynamicPruningCountSampleGradientSteps) {
  auto data = blobs(400, 8, 3, 0, 4);
  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 1e-2f;
  {
    Graph model = small_mlp(8, 3, 1);
    Trainer t(model, Task::classification, 3, cfg);
    std::vector<int64_t> subset(120);
    std::iota(subset.begin(), subset.end(), 100);
    t.set_sample_schedule(std::make_shared<FixedSubset>(subset, 400));
    std::set<int64_t> rows_seen;
    t.on_batch = [&](const BatchResult& b) {
      for (int64_t i = 0; i < b.size; ++i) rows_seen.insert(b.rows[i]);
      EXPECT_TRUE(std::isfinite(b.losses[0]));
    };
    for (int e = 0; e < cfg.epochs; ++e) EXPECT_EQ(t.train_epoch(data).samples, 120);
    EXPECT_EQ(t.samples_seen(), 4 * 120);
    EXPECT_EQ(rows_seen, std::set<int64_t>(subset.begin(), subset.end()));
  }
  {
    Graph model = small_mlp(8, 3, 1);
    Trainer t(model, Task::classification, 3, cfg);
    auto pruning = std::make_shared<DynamicPruning>(400, DynamicPruningConfig{0.7, 0.25, 1});
    t.set_sample_schedule(pruning);
    std::vector<int64_t> per_epoch;
    for (int e = 0; e < cfg.epochs; ++e) per_epoch.push_back(t.train_epoch(data).samples);
    EXPECT_EQ(per_epoch.front(), 400);
    EXPECT_EQ(per_epoch.back(), 400);  // annealed: the final quarter trains on everything
    EXPECT_LT(per_epoch[1], 400);
    EXPECT_LT(t.samples_seen(), 4 * 400);
    EXPECT_GT(evaluate(model, *data).accuracy, 0.9);
  }
}

TEST(TrainerAugmentation, ValueAwareTrainingRunsAndLearns) {
  // 8x8 "images": in class c every pixel k with k % 4 == c is brighter.
  auto data = blobs(256, 64, 4, 0, 5, {1, 8, 8});
  ModelBuilder b({1, 8, 8}, 3);
  b.conv2d(4, 3, 1, 1).activation("relu").flatten().linear(4);
  Graph model = b.finish();
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 32;
  cfg.optimizer.lr = 1e-2f;
  cfg.augment = AugmentConfig{};
  Trainer t(model, Task::classification, 4, cfg);
  expect_error([&] { t.train_epoch(data); }, {"one value per training row"});
  std::vector<float> values(256);
  for (int64_t i = 0; i < 256; ++i) values[i] = static_cast<float>(i) / 255.0f;
  t.set_row_values(values);
  for (int e = 0; e < cfg.epochs; ++e) EXPECT_TRUE(std::isfinite(t.train_epoch(data).train_loss));
  EXPECT_GT(evaluate(model, *data).accuracy, 0.7);
  // Augmentation is saved with the config.
  EXPECT_TRUE(TrainConfig::from_json(t.config().to_json()).augment.has_value());
}

TEST(DataEfficiencyOptions, RejectsBadCombinations) {
  DataEfficiencyOptions o;
  o.select = "best";
  expect_error([&] { o.validate(); }, {"best"});
  o.select = "top";
  o.prune = "dynamic";
  expect_error([&] { o.validate(); }, {"not both"});
  o.prune = "none";
  o.augment = "heavy";
  expect_error([&] { o.validate(); }, {"--augment"});
}

TEST(DataEfficiency, SelectionFromProxyValuesKeepsRatioAndClasses) {
  auto data = blobs(300, 8, 3, 15, 6);
  Graph model = small_mlp(8, 3, 2);
  DataEfficiencyOptions o;
  o.select = "stratified";
  o.selection.keep = 0.3;
  o.valuation.proxy_epochs = 1;
  TrainConfig proxy;
  proxy.batch_size = 32;
  DataEfficiencySetup s = prepare_data_efficiency(o, model, data, proxy);
  ASSERT_TRUE(s.selection.has_value());
  ASSERT_EQ(s.selection->indices.size(), 90u);
  int64_t per_class[3] = {0, 0, 0};
  for (int64_t i : s.selection->indices) ++per_class[data->targets().data<int64_t>()[i]];
  for (int64_t c : per_class) EXPECT_EQ(c, 30);
  EXPECT_EQ(s.summary()["valuation"]["proxy_samples"], 300);
}

}  // namespace
