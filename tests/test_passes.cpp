// Each pass leaves the model's outputs (and, for training passes, gradients)
// unchanged within a stated tolerance.
#include <gtest/gtest.h>

#include <cmath>

#include "leanai/graph/executor.h"
#include "leanai/graph/passes/fuse_conv_blocks.h"
#include "leanai/nn/model_builder.h"

namespace leanai {
namespace {

Tensor random_tensor(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = rng.normal();
  return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op == op;
  return n;
}

// conv-relu-pool, conv-relu (no pool), and a conv followed by something else.
Graph make_net() {
  ModelBuilder b({3, 12, 12}, 7);
  b.conv2d(32, 3, 1, 1).activation("relu").maxpool2d(2);  // fused with pool
  b.conv2d(16, 3).activation("relu");                      // fused without pool
  b.conv2d(8, 1).activation("sigmoid");                    // not fused
  b.flatten().linear(5);
  return b.finish();
}

// conv-BN-relu-pool (no conv bias), conv(bias)-BN-relu, as in cnn-bn and ResNets.
Graph make_bn_net() {
  ModelBuilder b({3, 12, 12}, 11);
  b.conv2d(32, 3, 1, 1, 1, 1, false).batchnorm().activation("relu").maxpool2d(2);
  b.conv2d(16, 3).batchnorm().activation("relu");
  b.flatten().linear(5);
  return b.finish();
}

TEST(FuseConvBlocks, RewritesOnlyConvReluChains) {
  Graph g = make_net();
  Graph f = fuse_conv_blocks(g);
  EXPECT_EQ(count_op(f, "conv2d_fused"), 2);
  EXPECT_EQ(count_op(f, "conv2d"), 1);
  EXPECT_EQ(count_op(f, "relu"), 0);
  EXPECT_EQ(count_op(f, "maxpool2d"), 0);
  EXPECT_EQ(count_op(f, "sigmoid"), 1);
}

TEST(FuseConvBlocks, SameOutputsInInference) {
  Graph g = make_net();
  Graph f = fuse_conv_blocks(g);
  Tensor x = random_tensor({4, 3, 12, 12}, 1);
  Executor a(g), b(f);
  Tensor ya = a.forward({x}).clone();
  const Tensor& yb = b.forward({x});
  EXPECT_LT(max_abs_diff(ya, yb), 1e-5);
}

TEST(FuseConvBlocks, SameGradientsInTraining) {
  Graph g = make_net();
  Graph f = fuse_conv_blocks(g);
  Tensor x = random_tensor({4, 3, 12, 12}, 2);
  Tensor dout = random_tensor({4, 5}, 3);
  Executor a(g), b(f);
  a.set_training(true);
  b.set_training(true);
  a.set_input_grads(true);
  b.set_input_grads(true);
  Tensor ya = a.forward({x}).clone();
  a.backward(dout);
  EXPECT_LT(max_abs_diff(ya, b.forward({x})), 1e-5);
  b.backward(dout);
  EXPECT_LT(max_abs_diff(a.input_grad(0), b.input_grad(0)), 1e-4);
  for (auto& [name, p] : g.params()) {
    SCOPED_TRACE(name);
    EXPECT_LT(max_abs_diff(a.grad(name), b.grad(name)), 1e-4);
  }
}

TEST(FuseConvBlocks, AbsorbsBatchNorm) {
  Graph f = fuse_conv_blocks(make_bn_net());
  EXPECT_EQ(count_op(f, "conv2d_fused"), 2);
  EXPECT_EQ(count_op(f, "batchnorm"), 0);
  EXPECT_EQ(count_op(f, "relu"), 0);
}

// Training: same outputs, gradients and running statistics; then eval (which
// uses the running statistics) gives the same outputs too.
TEST(FuseConvBlocks, BatchNormBlocksTrainAndEvaluateTheSame) {
  Graph g = make_bn_net();
  Graph g2 = make_bn_net();  // same seed: an independent copy of the same weights
  Graph f = fuse_conv_blocks(g2);
  Tensor x = random_tensor({4, 3, 12, 12}, 5);
  Tensor dout = random_tensor({4, 5}, 6);
  Executor a(g), b(f);
  a.set_training(true);
  b.set_training(true);
  a.set_input_grads(true);
  b.set_input_grads(true);
  for (int step = 0; step < 2; ++step) {
    Tensor ya = a.forward({x}).clone();
    EXPECT_LT(max_abs_diff(ya, b.forward({x})), 1e-4);
    a.backward(dout);
    b.backward(dout);
  }
  EXPECT_LT(max_abs_diff(a.input_grad(0), b.input_grad(0)), 1e-4);
  for (auto& [name, p] : g.params()) {
    SCOPED_TRACE(name);
    if (p.trainable) {
      EXPECT_LT(max_abs_diff(a.grad(name), b.grad(name)), 1e-3);
    }
    EXPECT_LT(max_abs_diff(p.value, g2.params().at(name).value), 1e-5);  // running stats updated alike
  }
  a.set_training(false);
  b.set_training(false);
  Tensor ea = a.forward({x}).clone();
  EXPECT_LT(max_abs_diff(ea, b.forward({x})), 1e-4);
}

TEST(FuseConvBlocks, SharesParametersWithTheInputGraph) {
  Graph g = make_net();
  Graph f = fuse_conv_blocks(g);
  for (auto& [name, p] : g.params()) EXPECT_EQ(p.value.raw(), f.params().at(name).value.raw()) << name;
}

}  // namespace
}  // namespace leanai
