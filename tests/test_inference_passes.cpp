// Each inference pass, alone and in the pipeline, leaves outputs unchanged
// (max abs difference < 1e-5 on values of order 1) and does the rewrite it claims.
#include <gtest/gtest.h>

#include "graph_fixtures.h"
#include "leanai/core/error.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/graph/passes/fold_batchnorm.h"
#include "leanai/graph/passes/fold_constants.h"
#include "leanai/graph/passes/fuse_post_ops.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/graph/passes/remove_identities.h"
#include "leanai/sparse/insert_gates.h"

namespace leanai {
namespace {

using namespace test_support;

constexpr double kTolerance = 1e-5;

double output_difference(Graph& a, Graph& b, const Tensor& x) {
  Executor ea(a), eb(b);
  Tensor ya = ea.forward({x}).clone();
  return max_abs_diff(ya, eb.forward({x}));
}

Tensor residual_input() { return random_tensor({3, 3, 12, 12}, 99); }

TEST(RemoveIdentities, DropsDropout) {
  Graph g = residual_net();
  Graph r = remove_identities(g);
  EXPECT_EQ(count_op(r, "dropout"), 0);
  EXPECT_EQ(r.params().size(), g.params().size());
  EXPECT_LT(output_difference(g, r, residual_input()), kTolerance);
}

TEST(FoldConstants, ComputesParameterOnlyOpsOnce) {
  Graph g;
  int x = g.add_input("input", {4});
  int w = g.add_param("w", random_tensor({4, 3}, 1));
  int wt = g.add("reshape", {w}, {{"shape", {3, 4}}});  // a weight rearranged on every call
  int scale = g.add_param("scale", Tensor::full({3, 4}, 0.5f));
  int ws = g.add("mul", {wt, scale});
  g.set_output(g.add("linear", {x, ws}));
  Graph f = fold_constants(g);
  EXPECT_EQ(count_op(f, "reshape"), 0);
  EXPECT_EQ(count_op(f, "mul"), 0);
  EXPECT_EQ(f.params().size(), 1u);  // only the folded weight remains
  EXPECT_LT(output_difference(g, f, random_tensor({2, 4}, 3)), kTolerance);
}

TEST(FoldConstants, LeavesInputDependentOpsAlone) {
  Graph g = residual_net();
  Graph f = fold_constants(g);
  EXPECT_EQ(f.nodes().size(), g.nodes().size());
}

TEST(FoldBatchNorm, FoldsConvAndLinearBatchNorms) {
  Graph g = residual_net();
  Graph f = fold_batchnorm(g);
  EXPECT_EQ(count_op(g, "batchnorm"), 6);
  EXPECT_EQ(count_op(f, "batchnorm"), 0);
  EXPECT_EQ(count_op(f, "conv2d"), count_op(g, "conv2d"));
  EXPECT_FALSE(f.params().count("bn.running_mean"));
  EXPECT_LT(output_difference(g, f, residual_input()), kTolerance);

  Graph m = activation_mlp();
  Graph fm = fold_batchnorm(m);
  EXPECT_EQ(count_op(fm, "batchnorm"), 0);
  EXPECT_LT(output_difference(m, fm, random_tensor({5, 20}, 4)), kTolerance);
}

TEST(FoldBatchNorm, KeepsABatchNormWhoseLayerOutputIsReadTwice) {
  Graph g;
  NetBuilder b(g, 5);
  int x = g.add_input("input", {3, 6, 6});
  int c = b.conv("conv", x, 3, 4, 3, 1, true);
  int n = b.bn("bn", c, 4);
  g.set_output(g.add("add", {n, c}));  // the raw conv output is needed as well
  Graph f = fold_batchnorm(g);
  EXPECT_EQ(count_op(f, "batchnorm"), 1);
  EXPECT_LT(output_difference(g, f, random_tensor({2, 3, 6, 6}, 6)), kTolerance);
}

TEST(FusePostOps, FusesActivationsAndResidualAdds) {
  Graph g = fold_batchnorm(residual_net());
  Graph f = fuse_post_ops(g);
  EXPECT_EQ(count_op(f, "relu"), 0);
  EXPECT_EQ(count_op(f, "add"), 0);
  int with_add = 0;
  for (const Node& n : f.nodes())
    if (n.attrs.contains("post_ops"))
      for (const json& p : n.attrs["post_ops"]) with_add += p["op"] == "add";
  EXPECT_EQ(with_add, 2);
  EXPECT_LT(output_difference(g, f, residual_input()), kTolerance);

  Graph m = activation_mlp();
  Graph fm = fuse_post_ops(m);
  EXPECT_EQ(count_op(fm, "leaky_relu") + count_op(fm, "sigmoid"), 0);
  EXPECT_LT(output_difference(m, fm, random_tensor({5, 20}, 7)), kTolerance);
}

TEST(FusePostOps, DoesNotFuseABroadcastAdd) {
  Graph g;
  int x = g.add_input("input", {6});
  int y = g.add("linear", {x, g.add_param("w", random_tensor({6, 6}, 1)), g.add_param("b", random_tensor({6}, 2))});
  g.set_output(g.add("add", {y, g.add_param("offset", random_tensor({6}, 3))}));  // [N,6] + [6]
  Graph f = fuse_post_ops(g);
  EXPECT_EQ(count_op(f, "add"), 1);
  EXPECT_LT(output_difference(g, f, random_tensor({4, 6}, 4)), kTolerance);
}

TEST(FusePostOps, FusedNodesRefuseTraining) {
  Graph f = fuse_post_ops(activation_mlp());
  Executor ex(f);
  ex.set_training(true);
  EXPECT_THROW(ex.forward({random_tensor({2, 20}, 1)}), Error);
}

// Gates after the inner ReLU of each block are compacted (conv1 -> bn1 ->
// relu -> gate -> conv2); those after a residual add, or read by two
// convolutions, stay in place. (tests/test_gates.cpp covers the pass in depth.)
TEST(CompactGates, CompactsBlockInnerGatesAndLeavesResidualOnes) {
  Graph g = with_gates(residual_net(), 0.5, 1);
  for (auto& [name, p] : g.params())
    if (name.ends_with(".gates")) p.value.copy_from(random_tensor(p.value.shape(), 40));
  ASSERT_EQ(count_op(g, "neuron_gate"), 5);
  Graph c = compact_gates(g);
  EXPECT_EQ(count_op(c, "neuron_gate"), 3);
  EXPECT_EQ(c.params().at("layer1.conv2.weight").value.shape(), (Shape{8, 4, 3, 3}));
  EXPECT_EQ(c.params().at("layer2.bn1.running_var").value.shape(), (Shape{8}));
  EXPECT_LT(output_difference(g, c, residual_input()), kTolerance);
  Graph o = optimize_for_inference(g);
  EXPECT_EQ(count_op(o, "neuron_gate"), 3);
  EXPECT_LT(output_difference(g, o, residual_input()), kTolerance);
}

TEST(OptimizeForInference, WholePipelineKeepsOutputs) {
  Graph g = residual_net();
  Graph o = optimize_for_inference(g);
  EXPECT_EQ(count_op(o, "batchnorm") + count_op(o, "relu") + count_op(o, "add") + count_op(o, "dropout"), 0);
  EXPECT_LT(output_difference(g, o, residual_input()), kTolerance);
}

}  // namespace
}  // namespace leanai
