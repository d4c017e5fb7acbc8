// calibrate_graph on the small residual CNN of graph_fixtures.h after the
// inference passes: one calibration per conv2d / linear layer, named after its
// weight; the chosen method has the least downstream (layer output) error;
// rare large outliers in the input make MinMax the worst choice for the stem.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/quant/calibrate_graph.h"

using namespace leanai;
using namespace leanai::test_support;

namespace {

// 8 batches of 32 images; batches 2..7 each hold one input value of +-25
// (6 in 110k values), the evaluation batches 0 and 1 none.
std::vector<Tensor> batches_with_outliers() {
  std::vector<Tensor> batches;
  for (int b = 0; b < 8; ++b) {
    Tensor x = random_tensor({32, 3, 12, 12}, 50 + b);
    if (b >= 2) x.data<float>()[(b * 977) % x.numel()] = b % 2 ? 25.0f : -25.0f;
    batches.push_back(x);
  }
  return batches;
}

}  // namespace

TEST(CalibrateGraph, ChoosesTheMethodWithLeastOutputErrorPerLayer) {
  const Graph g = optimize_for_inference(residual_net());
  const std::vector<LayerCalibration> cal = calibrate_graph(g, batches_with_outliers());
  std::vector<std::string> names;
  for (const LayerCalibration& c : cal) names.push_back(c.layer);
  EXPECT_EQ(names, (std::vector<std::string>{"stem", "layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.sconv",
                                             "layer2.conv2", "fc"}));
  for (const LayerCalibration& c : cal) {
    SCOPED_TRACE(c.layer);
    ASSERT_EQ(c.output_mse.size(), 4u);
    const bool shares_its_input = c.layer == "layer2.conv1" || c.layer == "layer2.sconv";
    for (const auto& [method, mse] : c.output_mse) {
      EXPECT_GE(mse, 0.0);
      if (!shares_its_input) {
        EXPECT_LE(c.output_mse.at(c.method), mse) << method;
      }
    }
    EXPECT_LE(c.min, c.max);
    std::printf("%-13s %-10s minmax %.3g percentile %.3g entropy %.3g mse %.3g\n", c.layer.c_str(), c.method.c_str(),
                c.output_mse.at("minmax"), c.output_mse.at("percentile"), c.output_mse.at("entropy"),
                c.output_mse.at("mse"));
  }
  const LayerCalibration& stem = cal[0];
  EXPECT_FLOAT_EQ(stem.max, 25.0f);
  EXPECT_FLOAT_EQ(stem.min, -25.0f);
  EXPECT_EQ(stem.params.dtype, DType::i8);
  EXPECT_LT(stem.output_mse.at(stem.method), 0.5 * stem.output_mse.at("minmax"));
  EXPECT_LT(stem.params.scale, 25.0f / 127);
  EXPECT_EQ(stem.channel_mean.size(), 3u);
  for (float m : stem.channel_mean) EXPECT_NEAR(m, 0.0f, 0.05f);
  // After the stem's fused ReLU every layer input is non-negative: u8, zero point 0.
  EXPECT_EQ(cal[1].params.dtype, DType::u8);
  EXPECT_EQ(cal[1].params.zero_point, 0);
  EXPECT_EQ(cal[1].channel_mean.size(), 8u);
  // layer2's conv1 and shortcut read layer1's output: one range for both.
  EXPECT_EQ(cal[3].params.scale, cal[4].params.scale);
  EXPECT_EQ(cal[3].params.zero_point, cal[4].params.zero_point);
}

// Two layers reading one tensor whose own best ranges differ: "a" reads the
// feature with rare large values (clipping them costs it most: MinMax), "b"
// only the small one (it wants a tight range). They get one range, the
// candidate whose errors, each relative to that layer's best, add up least.
TEST(CalibrateGraph, LayersReadingOneTensorShareOneRange) {
  Graph g;
  const int x = g.add_input("input", {2});
  const int a = g.add("linear", {x, g.add_param("a.weight", Tensor::from_vector({1, 2}, {1.0f, 0.0f}))});
  const int b = g.add("linear", {x, g.add_param("b.weight", Tensor::from_vector({1, 2}, {0.0f, 1.0f}))});
  g.set_output(g.add("add", {a, b}));
  std::vector<Tensor> batches;
  for (int i = 0; i < 4; ++i) {
    Tensor t = random_tensor({512, 2}, 70 + i);
    for (int r = 0; r < 512; ++r) t.data<float>()[2 * r] *= r % 64 == 0 ? 40.0f : 1.0f;  // feature 0: 8 rows far out
    batches.push_back(t);
  }
  const std::vector<LayerCalibration> cal = calibrate_graph(g, batches);
  ASSERT_EQ(cal.size(), 2u);
  auto own_best = [](const LayerCalibration& c) {
    return std::min_element(c.output_mse.begin(), c.output_mse.end(),
                            [](const auto& l, const auto& r) { return l.second < r.second; })->first;
  };
  ASSERT_NE(own_best(cal[0]), own_best(cal[1])) << "the case needs two layers that disagree";
  EXPECT_EQ(cal[0].method, cal[1].method);
  EXPECT_EQ(cal[0].params.scale, cal[1].params.scale);
  std::map<std::string, double> excess;
  for (const LayerCalibration& c : cal)
    for (const auto& [method, mse] : c.output_mse) excess[method] += mse / c.output_mse.at(own_best(c)) - 1.0;
  for (const auto& [method, e] : excess) EXPECT_LE(excess.at(cal[0].method), e + 1e-12) << method;
}

TEST(CalibrateGraph, AForcedMethodIsUsedEverywhere) {
  const Graph g = optimize_for_inference(residual_net());
  CalibrationOptions o;
  o.method = "entropy";
  o.eval_batches = 1;
  for (const LayerCalibration& c : calibrate_graph(g, batches_with_outliers(), o)) {
    EXPECT_EQ(c.method, "entropy");
    EXPECT_EQ(c.output_mse.size(), 1u);
  }
}

TEST(CalibrateGraph, BadArgumentsGiveClearErrors) {
  const Graph g = optimize_for_inference(residual_net());
  expect_error([&] { calibrate_graph(g, {}); }, {"no calibration batches"});
  CalibrationOptions o;
  o.method = "kl";
  expect_error([&] { calibrate_graph(g, {random_tensor({2, 3, 12, 12}, 1)}, o); }, {"'kl'", "entropy"});
  expect_error([&] { calibrate_graph(g, {random_tensor({2, 3, 10, 10}, 1)}); }, {"input", "[2, 3, 10, 10]"});
}
