// INT4 block weights (quant/int4_blocks.h) and the qlinear_w4 op: exact
// packing, quantization error bounds, the kernel (packed GEMV up to 8 rows,
// widened 256-row tiles above) against an f32 reference on the dequantized weights, in
// the Executor and in a compiled Plan, and clear errors on bad shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/core/rng.h"
#include "leanai/graph/executor.h"
#include "leanai/kernels/int4_gemv.h"
#include "leanai/quant/int4_blocks.h"
#include "leanai/runtime/plan.h"
#include "temp_dir.h"

using namespace leanai;
using test_support::expect_error;
using test_support::random_tensor;

namespace {

const test_support::TempDir kCacheDir;
const bool kCacheDirSet = setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1) == 0;

// x [batch, K] -> qlinear_w4 -> [batch, out], weights quantized from a random f32 W.
struct W4Layer {
  Graph g;
  Int4Weights q;
  Tensor bias;
};

W4Layer make_layer(int64_t out, int64_t k, int64_t block, const nlohmann::json& post_ops = nullptr) {
  W4Layer l;
  l.q = quantize_int4_blocks(random_tensor({out, k}, 100 + k + out, 0.1f), block);
  l.bias = random_tensor({out}, 7, 0.5f);
  int x = l.g.add_input("x", {k});
  std::vector<int> in = {x, l.g.add_param("fc.qweight", l.q.packed, false), l.g.add_param("fc.w_scale", l.q.scales, false),
                         l.g.add_param("fc.bias", l.bias, false)};
  nlohmann::json attrs = {{"block", block}, {"in", k}};
  if (!post_ops.is_null()) {
    attrs["post_ops"] = post_ops;
    in.push_back(l.g.add_input("residual", {out}));
  }
  l.g.set_output(l.g.add("qlinear_w4", in, attrs, "fc"));
  return l;
}

// y = x W^T + b on the dequantized weights, in double.
std::vector<double> reference(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t rows = x.dim(0), k = x.dim(1), out = w.dim(0);
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.data<float>()[o];
      for (int64_t i = 0; i < k; ++i) s += double(x.data<float>()[r * k + i]) * w.data<float>()[o * k + i];
      y[r * out + o] = s;
    }
  return y;
}

// max |got - want| / max |want|
double relative_error(const Tensor& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(got.data<float>()[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return err / scale;
}

}  // namespace

TEST(Int4Blocks, PackUnpackIsExactForEveryValue) {
  Rng rng(1);
  Tensor v = Tensor::empty({5, 64}, DType::i8);
  for (int64_t i = 0; i < v.numel(); ++i) v.data<int8_t>()[i] = static_cast<int8_t>(static_cast<int>(rng.below(16)) - 8);
  for (int i = 0; i < 16; ++i) v.data<int8_t>()[i] = static_cast<int8_t>(i - 8);  // all 16 values
  Tensor p = pack_int4(v);
  EXPECT_EQ(p.shape(), (Shape{5, 32}));
  EXPECT_EQ(p.data<uint8_t>()[0], 0x98);  // -8 low (0x8), -7 high (0x9)
  Tensor back = unpack_int4(p);
  for (int64_t i = 0; i < v.numel(); ++i) ASSERT_EQ(back.data<int8_t>()[i], v.data<int8_t>()[i]) << i;
  v.data<int8_t>()[70] = 8;
  expect_error([&] { pack_int4(v); }, {"value 8", "[1, 6]", "[-8, 7]"});
  expect_error([&] { pack_int4(Tensor::zeros({2, 3}, DType::i8)); }, {"K even"});
}

TEST(Int4Blocks, QuantizeErrorWithinHalfAStep) {
  Tensor w = random_tensor({16, 128}, 3);
  w.data<float>()[5] = -4.0f;  // a negative extreme
  for (int64_t block : {32, 64}) {
    Int4Weights a = quantize_int4_blocks(w, block, Int4ScaleRule::absmax);
    Int4Weights m = quantize_int4_blocks(w, block, Int4ScaleRule::mse);
    Tensor da = dequantize_int4_blocks(a), dm = dequantize_int4_blocks(m);
    const int64_t k = 128, blocks = k / block;
    for (int64_t o = 0; o < 16; ++o)
      for (int64_t b = 0; b < blocks; ++b) {
        const float sa = a.scales.data<float>()[o * blocks + b], sm = m.scales.data<float>()[o * blocks + b];
        double ea = 0, em = 0;
        for (int64_t i = b * block; i < (b + 1) * block; ++i) {
          const float x = w.data<float>()[o * k + i];
          const float xa = da.data<float>()[o * k + i], xm = dm.data<float>()[o * k + i];
          EXPECT_LE(std::fabs(x - xa), 0.5f * sa * (1 + 1e-5f)) << o << " " << i;
          // The MSE rule's scale may clip an extreme weight; inside the grid it rounds to nearest.
          if (x >= -8.5f * sm && x <= 7.5f * sm) {
            EXPECT_LE(std::fabs(x - xm), 0.5f * sm * (1 + 1e-5f));
          }
          ea += (x - xa) * (x - xa);
          em += (x - xm) * (x - xm);
        }
        EXPECT_LE(em, ea * (1 + 1e-9));
      }
  }
}

TEST(Int4Blocks, LayoutErrorsAreClear) {
  expect_error([] { quantize_int4_blocks(Tensor::zeros({4, 96}), 64); }, {"96", "not a multiple of block 64"});
  expect_error([] { quantize_int4_blocks(Tensor::zeros({4, 64}), 16); }, {"block must be 32 or 64", "16"});
  expect_error([] { quantize_int4_blocks(Tensor::zeros({64}), 32); }, {"[out, K]"});
  Int4Weights q = quantize_int4_blocks(Tensor::zeros({4, 64}), 32);
  EXPECT_EQ(q.scales.data<float>()[0], 1.0f);  // an all-zero block
  q.scales = Tensor::zeros({4, 3});
  expect_error([&] { dequantize_int4_blocks(q); }, {"scales", "[4, 2]", "[4, 3]"});
}

TEST(QLinearW4, MatchesTheReferenceAtEveryBatchAndBlock) {
  std::printf("int4 GEMV dispatched to %s\n", int4_gemv_target());
  struct Case { int64_t out, k; };
  for (Case c : {Case{70, 256}, Case{300, 256}, Case{130, 4096}})  // 300: a full and a partial 256-row tile
    for (int64_t block : {32, 64}) {
      W4Layer l = make_layer(c.out, c.k, block);
      const Tensor w = dequantize_int4_blocks(l.q);
      Executor ex(l.g);
      for (int64_t batch : {1, 2, 3, 8, 9, 64}) {
        SCOPED_TRACE("out " + std::to_string(c.out) + " K " + std::to_string(c.k) + " block " + std::to_string(block) +
                     " batch " + std::to_string(batch));
        const Tensor x = random_tensor({batch, c.k}, batch);
        EXPECT_LT(relative_error(ex.forward({x}), reference(x, w, l.bias)), 1e-4);
      }
    }
}

TEST(QLinearW4, EveryInstructionSetGivesTheSameResult) {
  W4Layer l = make_layer(50, 128, 32);
  const Tensor w = dequantize_int4_blocks(l.q);
  for (const std::string& target : int4_gemv_targets()) {
    int4_gemv_use_target(target);
    EXPECT_EQ(int4_gemv_target(), target);
    Executor ex(l.g);
    for (int64_t batch : {1, 5, 8}) {
      const Tensor x = random_tensor({batch, 128}, 40 + batch);
      EXPECT_LT(relative_error(ex.forward({x}), reference(x, w, l.bias)), 1e-4) << target << " batch " << batch;
    }
  }
  int4_gemv_use_target("");
  EXPECT_GE(int4_gemv_targets().size(), 2u);  // SSE4 and AVX2 at least, on any x86-64 CPU of the last decade
}

TEST(QLinearW4, AppliesFusedPostOps) {
  W4Layer l = make_layer(40, 64, 32, {{{"op", "add"}}, {{"op", "relu"}}});
  const Tensor w = dequantize_int4_blocks(l.q);
  Executor ex(l.g);
  for (int64_t batch : {1, 12}) {
    const Tensor x = random_tensor({batch, 64}, 5), r = random_tensor({batch, 40}, 6);
    std::vector<double> want = reference(x, w, l.bias);
    for (size_t i = 0; i < want.size(); ++i) want[i] = std::max(0.0, want[i] + r.data<float>()[i]);
    EXPECT_LT(relative_error(ex.forward({x, r}), want), 1e-4);
  }
}

TEST(QLinearW4, RunsInACompiledPlan) {
  W4Layer l = make_layer(96, 512, 64);
  Graph g = l.g;
  const int relu = g.add("relu", {g.output()});
  g.set_output(relu);
  const Tensor w = dequantize_int4_blocks(l.q);
  Plan plan(g);
  for (int64_t batch : {1, 3, 20}) {
    const Tensor x = random_tensor({batch, 512}, 11);
    std::vector<double> want = reference(x, w, l.bias);
    for (double& v : want) v = std::max(0.0, v);
    EXPECT_LT(relative_error(plan.run(x), want), 1e-4) << batch;
  }
  bool kernel_step = false;
  for (const PlanStep& s : plan.steps(1)) kernel_step |= s.kind == "kernel:qlinear_w4";
  EXPECT_TRUE(kernel_step);
}

TEST(QLinearW4, WrongShapesGiveClearErrors) {
  auto run = [](int64_t k_attr, const Tensor& wp, const Tensor& scales, const Tensor& b, int64_t block = 32) {
    Graph g;
    int x = g.add_input("x", {64});
    g.set_output(g.add("qlinear_w4", {x, g.add_param("wp", wp, false), g.add_param("s", scales, false), g.add_param("b", b, false)},
                       {{"block", block}, {"in", k_attr}}));
    Executor ex(g);
    ex.forward({Tensor::zeros({2, 64})});
  };
  const Tensor wp = Tensor::zeros({8, 32}, DType::u8), s = Tensor::zeros({8, 2}), b = Tensor::zeros({8});
  EXPECT_NO_THROW(run(64, wp, s, b));
  expect_error([&] { run(128, wp, s, b); }, {"qlinear_w4", "'in' is 128", "64 features"});
  expect_error([&] { run(64, Tensor::zeros({8, 16}, DType::u8), s, b); }, {"[out, K/2 = 32]", "[8, 16]"});
  expect_error([&] { run(64, wp, Tensor::zeros({8, 4}), b); }, {"scales", "[8, 2]", "[8, 4]"});
  expect_error([&] { run(64, wp, s, Tensor::zeros({7})); }, {"bias", "[8]", "[7]"});
  expect_error([&] { run(64, wp, s, b, 48); }, {"block must be 32 or 64"});
  expect_error([&] { run(64, Tensor::zeros({8, 32}), s, b); }, {"input 1", "U8"});
  expect_error([&] { run(64, wp, s, b, 64); }, {"[8, 1]", "[8, 2]"});
}
