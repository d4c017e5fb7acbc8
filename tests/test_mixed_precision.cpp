// Sensitivity analysis and the mixed-precision pipeline on a model with a
// known sensitive layer: a trained 16-64-64-8 MLP whose fc1 has, in every
// row, one huge weight on an input feature that is always zero. The float
// model does not notice (it multiplies zeros); per-channel int8 does, since
// that weight sets the row's scale and the rest of the row rounds to zero.
#include <gtest/gtest.h>

#include <cmath>

#include "blob_data.h"
#include "expect_error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/model_builder.h"
#include "leanai/nn/trainer.h"
#include "leanai/quant/fisher.h"
#include "leanai/quant/mixed_precision.h"
#include "leanai/quant/plan_eval.h"
#include "leanai/quant/sensitivity.h"
#include "temp_dir.h"

using namespace leanai;
using leanai::test_support::blobs;

namespace {

// Solver options allowing `n` full evaluations, no candidates.
SolverOptions evaluations(int n) {
  SolverOptions o;
  o.max_evaluations = n;
  return o;
}

// Blobs with feature 0 always zero.
std::shared_ptr<InMemoryDataset> blobs_with_dead_feature(int64_t n, uint64_t seed) {
  auto d = blobs(n, seed);
  Tensor x = Tensor::empty({n, 16});
  Tensor y = Tensor::empty({n}, DType::i64);
  std::vector<int64_t> rows(n);
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  d->gather(rows.data(), n, x, y);
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i * 16] = 0.0f;
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, 8);
}

struct Fixture {
  Graph model;
  SampleSet calib, val;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    set_num_threads(1);
    auto train = blobs_with_dead_feature(2000, 2);
    Fixture f;
    f.model = ModelBuilder({16}, 0).linear(64).activation("relu").linear(64).activation("relu").linear(8).finish();
    TrainConfig cfg;
    cfg.epochs = 4;
    cfg.batch_size = 50;
    cfg.optimizer.lr = 3e-3f;
    Trainer trainer(f.model, Task::classification, 8, cfg);
    for (int e = 0; e < cfg.epochs; ++e) trainer.train_epoch(train);
    // Plant the sensitive layer: a weight 500x the row's largest, on the dead feature.
    Tensor& w = f.model.param("fc1.weight").value;
    for (int64_t o = 0; o < 64; ++o) {
      float m = 0;
      for (int64_t i = 1; i < 16; ++i) m = std::max(m, std::fabs(w.data<float>()[o * 16 + i]));
      w.data<float>()[o * 16] = 500.0f * m;
    }
    QuantizationSamples s = quantization_samples(*train, nullptr, 256, 1000, 7);
    f.calib = s.calibration;
    auto val = blobs_with_dead_feature(1000, 3);
    std::vector<int64_t> rows(1000);
    for (int64_t i = 0; i < 1000; ++i) rows[i] = i;
    f.val = gather_rows(*val, rows);
    return f;
  }();
  return f;
}

std::map<std::string, LayerQuant> calibrated(const Graph& inf) {
  return calibrate_layers(inf, fixture().calib.x, CalibrationOptions{});
}

}  // namespace

TEST(PlanEval, ComparesLogits) {
  const Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 0, 0, 0});
  const OutputError same = compare_logits(a, a);
  EXPECT_EQ(same.kl, 0.0);
  EXPECT_TRUE(std::isinf(same.sqnr_db));
  // Shifting logits by a constant leaves the softmax, so KL stays 0, but the noise is 1 per value.
  const Tensor b = Tensor::from_vector({2, 3}, {2, 3, 4, 1, 1, 1});
  const OutputError shifted = compare_logits(a, b);
  EXPECT_NEAR(shifted.kl, 0.0, 1e-12);
  EXPECT_NEAR(shifted.sqnr_db, 10 * std::log10(14.0 / 6.0), 1e-9);
  EXPECT_DOUBLE_EQ(accuracy(a, Tensor::from_vector({2}, {0, 0}).to(DType::i64)), 0.5);
}

TEST(Fisher, DeadInputFeatureGetsNoInformation) {
  const Fixture& f = fixture();
  const auto fisher = fisher_diagonal(f.model, f.val.x.slice0(0, 256), f.val.labels.slice0(0, 256));
  const Tensor& fc1 = fisher.at("fc1.weight");
  double dead = 0, live = 0;
  for (int64_t o = 0; o < 64; ++o) {
    dead += fc1.data<float>()[o * 16];
    for (int64_t i = 1; i < 16; ++i) live += fc1.data<float>()[o * 16 + i];
  }
  EXPECT_EQ(dead, 0.0);  // its input is always zero, so is its gradient
  EXPECT_GT(live, 0.0);
}

TEST(Sensitivity, FindsThePlantedSensitiveLayer) {
  const Fixture& f = fixture();
  const Graph inf = optimize_for_inference(f.model);
  SensitivityOptions so;
  so.latency_batch = 64;
  so.latency_seconds = 0.02;
  const SensitivityReport r = analyze_sensitivity(f.model, calibrated(inf), f.val.x, f.val.labels, so);
  ASSERT_EQ(r.layers.size(), 3u);
  EXPECT_GT(r.fp32_accuracy, 0.95);
  EXPECT_EQ(r.layers[0].layer, "fc1");  // sorted by int8 KL, largest first
  const PrecisionMeasure* fc1_int8 = r.layers[0].find(Precision::int8);
  ASSERT_NE(fc1_int8, nullptr);
  EXPECT_LT(fc1_int8->accuracy_change, -20.0);
  EXPECT_GT(fc1_int8->fisher, 0.0);  // the live weights' rounding error, weighted by their information
  EXPECT_GT(r.layers[0].find(Precision::bf16)->accuracy_change, -1.0);
  for (size_t i = 1; i < r.layers.size(); ++i) {
    const PrecisionMeasure* m = r.layers[i].find(Precision::int8);
    EXPECT_GT(m->accuracy_change, -2.0) << r.layers[i].layer;
    EXPECT_LT(m->kl, fc1_int8->kl / 10) << r.layers[i].layer;
    EXPECT_GT(m->sqnr_db, 15.0) << r.layers[i].layer;
  }
  double fp32_time = 0;
  for (const LayerSensitivity& l : r.layers) {
    const PrecisionMeasure *fp32 = l.find(Precision::fp32), *int8 = l.find(Precision::int8);
    fp32_time += fp32->latency_ms;
    EXPECT_GT(int8->latency_ms, 0.0);  // an equal share of the all-int8 model's time
    EXPECT_EQ(int8->latency_noise_ms, 0.0);  // the base: timed once, not as a change
    EXPECT_LT(int8->bytes, fp32->bytes / 2);
    // int4 needs the input width to be a multiple of the block (fc1 has 16 inputs).
    EXPECT_EQ(l.find(Precision::int4)->available, l.layer != "fc1") << l.layer;
  }
  EXPECT_GT(fp32_time, 0.0);
  // The JSON form round-trips.
  const SensitivityReport back = SensitivityReport::from_json(r.to_json());
  ASSERT_EQ(back.layers.size(), r.layers.size());
  EXPECT_EQ(back.layers[0].layer, "fc1");
  EXPECT_DOUBLE_EQ(back.layers[0].find(Precision::int8)->kl, fc1_int8->kl);
  EXPECT_DOUBLE_EQ(back.layers[0].find(Precision::fp32)->latency_noise_ms, r.layers[0].find(Precision::fp32)->latency_noise_ms);
  leanai::test_support::expect_error([] { SensitivityReport::from_json(json{{"layers", 3}}); }, {"sensitivity table"});
}

TEST(MixedPrecision, SolverKeepsTheSensitiveLayerAndMeetsTheBudget) {
  const Fixture& f = fixture();
  const Graph inf = optimize_for_inference(f.model);
  const auto quant = calibrated(inf);
  SensitivityOptions so;
  so.latency_batch = 64;
  so.latency_seconds = 0.02;
  so.precisions = {Precision::bf16, Precision::int8};
  const SensitivityReport r = analyze_sensitivity(f.model, quant, f.val.x, f.val.labels, so);
  const auto costs = r.costs();
  std::vector<std::string> order;
  for (const LayerCosts& c : costs) order.push_back(c.layer);
  const double fp32_acc = accuracy(plan_logits(inf, f.val.x), f.val.labels);
  auto evaluate = [&](const Assignment& a) {
    const Graph g = apply_precisions(inf, quant, order, a);
    PlanMeasure m;
    m.drop = 100.0 * (fp32_acc - accuracy(plan_logits(g, f.val.x), f.val.labels));
    m.bytes = static_cast<double>(parameter_bytes(g));
    m.latency_ms = 1;
    return m;
  };
  // Latency measured on a shared machine is noisy, so this test asks for accuracy only.
  const SolvedPlan plan = solve_precisions(costs, {BudgetKind::max_drop, 0.5}, evaluate, evaluations(4));
  EXPECT_TRUE(plan.met_budget);
  EXPECT_LE(plan.measured.drop, 0.5);
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] == "fc1") {
      EXPECT_NE(plan.assignment[i], Precision::int8);
    }
  }
  // Uniform int8 is what the plan avoided: far over budget.
  const Graph all_int8 = apply_precisions(inf, quant, order, Assignment(order.size(), Precision::int8));
  EXPECT_GT(100.0 * (fp32_acc - accuracy(plan_logits(all_int8, f.val.x), f.val.labels)), 10.0);
}

TEST(MixedPrecision, QuantizedModelFileRoundTrips) {
  const Fixture& f = fixture();
  const Graph inf = optimize_for_inference(f.model);
  const auto quant = calibrated(inf);
  const std::vector<std::string> order = {"fc1", "fc2", "fc3"};
  const Graph q = apply_precisions(inf, quant, order, {Precision::bf16, Precision::int8, Precision::fp16});
  EXPECT_LT(parameter_bytes(q), parameter_bytes(inf) * 0.45);
  leanai::test_support::TempDir dir;
  const std::string path = dir.file("q.leanai");
  save_model(path, q, {{"task", "classification"}});
  const LoadedModel back = load_model(path);
  EXPECT_EQ(parameter_bytes(back.graph), parameter_bytes(q));
  const Tensor a = plan_logits(q, f.val.x), b = plan_logits(back.graph, f.val.x);
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
}

TEST(MixedPrecision, SamplesComeFromDisjointRows) {
  auto d = blobs(300, 1);
  const QuantizationSamples s = quantization_samples(*d, nullptr, 100, 1000, 3);
  EXPECT_EQ(s.calibration.size(), 100);
  EXPECT_EQ(s.validation.size(), 200);  // what is left after calibration
  EXPECT_TRUE(s.validation_seen_in_training);
  auto val = blobs(50, 9);
  const QuantizationSamples t = quantization_samples(*d, val.get(), 100, 1000, 3);
  EXPECT_EQ(t.validation.size(), 50);
  EXPECT_FALSE(t.validation_seen_in_training);
  leanai::test_support::expect_error([&] { quantization_samples(*d, nullptr, 300, 10, 3); }, {"no rows left for validation"});
}
