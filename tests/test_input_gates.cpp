// Input-conditional block gating (block_gated_linear, with_input_gates): every
// row runs exactly top_k blocks, the top_k of its own gate scores; unselected
// blocks give 0 and take no weight gradient from that row; the grouped
// computation equals the dense masked one (forward and gradients, on a size
// that takes the parallel paths); inputs of different kinds pick different
// blocks; with_input_gates on the presets; an input-gated MLP learns and runs
// in the Plan.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
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
#include "leanai/nn/model_builder.h"
#include "leanai/nn/models.h"
#include "leanai/nn/trainer.h"
#include "leanai/runtime/plan.h"
#include "leanai/sparse/input_gates.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using namespace test_support;

// Kernel choices a Plan measures are cached in a temp dir, not in $HOME.
const TempDir kCacheDir;
const bool kCacheDirSet = setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1) == 0;

const float* F(const Tensor& t) { return t.data<float>(); }

// x [D] -> block_gated_linear(x, w [C, D], b [C], gw [B, D]); the tensors
// share storage with the graph's parameters.
struct BlockGraph {
  Graph g;
  Tensor w, b, gw;
  int64_t blocks, top_k;
  BlockGraph(int64_t D, int64_t C, int64_t B, int64_t k, uint64_t seed)
      : w(random_tensor({C, D}, seed, 1.0f / std::sqrt(static_cast<float>(D)))),
        b(random_tensor({C}, seed + 1, 0.5f)),
        gw(random_tensor({B, D}, seed + 2)),
        blocks(B),
        top_k(k) {
    int x = g.add_input("x", {D});
    g.set_output(g.add("block_gated_linear", {x, g.add_param("w", w), g.add_param("b", b), g.add_param("gw", gw)},
                       {{"blocks", B}, {"top_k", k}}));
  }
};

// What the op should do, in double: per row the kept blocks (top_k scores,
// ties to the lower index) and their scales g = top_k * softmax.
struct Routing {
  std::vector<std::vector<int64_t>> kept;  // per row, ascending
  std::vector<std::map<int64_t, double>> g;
  std::vector<std::vector<double>> scores;
};

Routing route(const Tensor& x, const Tensor& gw, int64_t top_k) {
  const int64_t N = x.dim(0), D = x.dim(1), B = gw.dim(0);
  Routing r;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> s(B);
    for (int64_t k = 0; k < B; ++k)
      for (int64_t d = 0; d < D; ++d) s[k] += static_cast<double>(F(x)[n * D + d]) * F(gw)[k * D + d];
    std::vector<int64_t> order(B);
    for (int64_t k = 0; k < B; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
    std::vector<int64_t> kept(order.begin(), order.begin() + top_k);
    std::sort(kept.begin(), kept.end());
    double top = s[order[0]], sum = 0;
    for (int64_t k : kept) sum += std::exp(s[k] - top);
    std::map<int64_t, double> g;
    for (int64_t k : kept) g[k] = top_k * std::exp(s[k] - top) / sum;
    r.kept.push_back(kept);
    r.g.push_back(g);
    r.scores.push_back(s);
  }
  return r;
}

TEST(BlockGatedLinear, EveryRowRunsExactlyItsTopKBlocks) {
  for (int64_t k : {1, 3, 8}) {
    SCOPED_TRACE("top_k " + std::to_string(k));
    BlockGraph bg(16, 32, 8, k, 10);
    const Tensor x = random_tensor({64, 16}, 11);
    Executor ex(bg.g);
    const Tensor& y = ex.forward({x});
    const Routing r = route(x, bg.gw, k);
    for (int64_t n = 0; n < 64; ++n) {
      std::vector<int64_t> running;
      for (int64_t blk = 0; blk < 8; ++blk) {
        bool any = false;
        for (int64_t i = 0; i < 4; ++i) any |= F(y)[n * 32 + blk * 4 + i] != 0.0f;
        if (any) running.push_back(blk);
      }
      ASSERT_EQ(running, r.kept[n]) << "row " << n;
    }
  }
}

// One row: the blocks it did not choose give 0 and take no gradient for
// their weight rows or bias; the chosen ones do.
TEST(BlockGatedLinear, UnselectedBlocksGiveZeroAndGetNoWeightGradientFromThatRow) {
  BlockGraph bg(12, 24, 6, 2, 20);
  for (uint64_t seed : {21, 22, 23}) {
    const Tensor x = random_tensor({1, 12}, seed);
    Executor ex(bg.g);
    ex.set_training(true);
    const Tensor y = ex.forward({x}).clone();
    ex.backward(random_tensor({1, 24}, seed + 100));  // dy everywhere, also on unselected blocks
    const std::vector<int64_t> kept = route(x, bg.gw, 2).kept[0];
    for (int64_t blk = 0; blk < 6; ++blk) {
      const bool on = std::find(kept.begin(), kept.end(), blk) != kept.end();
      for (int64_t o = blk * 4; o < (blk + 1) * 4; ++o) {
        if (!on) {
          ASSERT_EQ(F(y)[o], 0.0f) << "output " << o;
        }
        ASSERT_EQ(F(ex.grad("b"))[o] == 0.0f, !on) << "bias gradient " << o;
        double row = 0;
        for (int64_t d = 0; d < 12; ++d) row += std::abs(F(ex.grad("w"))[o * 12 + d]);
        ASSERT_EQ(row == 0.0, !on) << "weight row " << o;
      }
    }
  }
}

// The grouped computation (counting sort, one GEMM per block, scatter)
// against the dense layer masked per row, on a size above the kernels'
// parallel threshold: y = M o (x W^T + b) with M[n, c] = g of c's block
// (0 when unselected); dW = (M o dy)^T x; db = sum_n M o dy;
// dx = (M o dy) W + ds gw and dgw = ds^T x, with ds the softmax's backward.
TEST(BlockGatedLinear, GroupedComputationEqualsTheDenseMaskedOne) {
  const int64_t N = 300, D = 512, C = 64, B = 8, K = 2, S = C / B;
  BlockGraph bg(D, C, B, K, 30);
  const Tensor x = random_tensor({N, D}, 31), dy = random_tensor({N, C}, 32);
  Executor ex(bg.g);
  ex.set_training(true);
  ex.set_input_grads(true);
  const Tensor y = ex.forward({x}).clone();
  ex.backward(dy);
  const Routing r = route(x, bg.gw, K);

  std::vector<double> h(N * C), m(N * C, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double acc = F(bg.b)[c];
      for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(F(x)[n * D + d]) * F(bg.w)[c * D + d];
      h[n * C + c] = acc;
      auto it = r.g[n].find(c / S);
      if (it != r.g[n].end()) m[n * C + c] = it->second;
    }
  auto rel = [](double a, double b) { return std::abs(a - b) / (1.0 + std::abs(b)); };
  double worst_y = 0, worst_w = 0, worst_b = 0, worst_x = 0, worst_gw = 0;
  for (int64_t i = 0; i < N * C; ++i) worst_y = std::max(worst_y, rel(F(y)[i], m[i] * h[i]));
  for (int64_t c = 0; c < C; ++c) {
    double db = 0;
    for (int64_t n = 0; n < N; ++n) db += m[n * C + c] * F(dy)[n * C + c];
    worst_b = std::max(worst_b, rel(F(ex.grad("b"))[c], db));
    for (int64_t d = 0; d < D; d += 7) {
      double dw = 0;
      for (int64_t n = 0; n < N; ++n) dw += m[n * C + c] * F(dy)[n * C + c] * F(x)[n * D + d];
      worst_w = std::max(worst_w, rel(F(ex.grad("w"))[c * D + d], dw));
    }
  }
  // ds[n, k] = g_k (dg_k - sum_j p_j dg_j) for kept k, dg_k = sum over k's outputs of dy * h.
  std::vector<double> ds(N * B, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    std::map<int64_t, double> dg;
    double mean = 0;
    for (auto [k, g] : r.g[n]) {
      for (int64_t c = k * S; c < (k + 1) * S; ++c) dg[k] += F(dy)[n * C + c] * h[n * C + c];
      mean += g / K * dg[k];
    }
    for (auto [k, g] : r.g[n]) ds[n * B + k] = g * (dg[k] - mean);
  }
  for (int64_t n = 0; n < N; n += 3)
    for (int64_t d = 0; d < D; d += 5) {
      double dx = 0;
      for (int64_t c = 0; c < C; ++c) dx += m[n * C + c] * F(dy)[n * C + c] * F(bg.w)[c * D + d];
      for (int64_t k = 0; k < B; ++k) dx += ds[n * B + k] * F(bg.gw)[k * D + d];
      worst_x = std::max(worst_x, rel(F(ex.input_grad(0))[n * D + d], dx));
    }
  for (int64_t k = 0; k < B; ++k)
    for (int64_t d = 0; d < D; d += 3) {
      double dgw = 0;
      for (int64_t n = 0; n < N; ++n) dgw += ds[n * B + k] * F(x)[n * D + d];
      worst_gw = std::max(worst_gw, rel(F(ex.grad("gw"))[k * D + d], dgw));
    }
  EXPECT_LT(worst_y, 1e-5);
  EXPECT_LT(worst_w, 1e-4);
  EXPECT_LT(worst_b, 1e-4);
  EXPECT_LT(worst_x, 1e-4);
  EXPECT_LT(worst_gw, 1e-4);
  // Every block had rows: the check covered them all.
  std::set<int64_t> used;
  for (const auto& kept : r.kept) used.insert(kept.begin(), kept.end());
  EXPECT_EQ(used.size(), static_cast<size_t>(B));
}

// A task built for routing: four kinds of input, each in its own group of
// four features. After training, the first layer's gate gives each kind a
// home block that over 90% of its rows run, and the kinds' homes differ.
TEST(InputGates, DifferentInputsSelectDifferentBlocks) {
  set_num_threads(1);
  const int64_t n = 800, D = 16;
  Rng rng(5);
  Tensor x = Tensor::empty({n, D});
  Tensor labels = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t kind = static_cast<int64_t>(rng.below(4));
    labels.data<int64_t>()[i] = kind;
    for (int64_t d = 0; d < D; ++d) x.data<float>()[i * D + d] = (d / 4 == kind ? 2.0f : 0.0f) + 0.3f * rng.normal();
  }
  auto data = std::make_shared<InMemoryDataset>(x, labels, Task::classification, 4);
  ModelBuilder b({D}, 1);
  b.linear(32).activation("relu").linear(4);
  Graph model = with_input_gates(b.finish(), 0.75, 8, 2);  // top 2 of 8 blocks
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 32;
  Trainer trainer(model, Task::classification, 4, cfg);
  for (int e = 0; e < cfg.epochs; ++e) trainer.train_epoch(data);
  EXPECT_GT(evaluate(model, *data).accuracy, 0.95);

  const Routing r = route(x, model.params().at("fc1.gate_weight").value, 2);
  std::vector<std::vector<double>> usage(4, std::vector<double>(8, 0.0));  // share of a kind's rows running each block
  std::vector<int> rows(4, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t kind = labels.data<int64_t>()[i];
    rows[kind]++;
    for (int64_t blk : r.kept[i]) usage[kind][blk] += 1.0;
  }
  std::set<int64_t> homes;
  for (int kind = 0; kind < 4; ++kind) {
    for (double& u : usage[kind]) u /= rows[kind];
    const auto home = std::max_element(usage[kind].begin(), usage[kind].end()) - usage[kind].begin();
    if (std::getenv("LEANAI_TEST_VERBOSE"))
      for (int64_t blk = 0; blk < 8; ++blk) std::printf("kind %d block %ld: %.2f\n", kind, (long)blk, usage[kind][blk]);
    EXPECT_GT(usage[kind][home], 0.9) << "kind " << kind << ": its rows share a block";
    homes.insert(home);
  }
  EXPECT_GE(homes.size(), 3u) << "the kinds are routed to different blocks";
}

// ---------------------------------------------------------------------------
// with_input_gates

TEST(InputGates, TopKFollowsTheSparsity) {
  EXPECT_EQ(input_gate_top_k(0.7, 8), 2);   // round(2.4)
  EXPECT_EQ(input_gate_top_k(0.5, 8), 4);
  EXPECT_EQ(input_gate_top_k(0.0, 8), 8);
  EXPECT_EQ(input_gate_top_k(0.99, 8), 1);  // at least one block
  EXPECT_EQ(input_gate_top_k(0.8, 16), 3);  // round(3.2)
  expect_error([] { input_gate_top_k(1.0, 8); }, {"[0, 1)"});
  expect_error([] { input_gate_top_k(0.5, 0); }, {"blocks"});
}

TEST(InputGates, WithInputGatesReplacesTheHiddenLinearLayersOfThePresets) {
  struct Expect {
    const char* preset;
    std::vector<std::pair<std::string, int64_t>> layers;  // weight, width
  };
  for (const Expect& e : {Expect{"mlp", {{"fc1", 512}, {"fc2", 256}}}, Expect{"cnn", {{"fc1", 128}}},
                          Expect{"cnn-bn", {{"fc1", 256}}}}) {
    SCOPED_TRACE(e.preset);
    Graph dense = build_preset(e.preset, {1, 28, 28}, 10, 0);
    Graph g = with_input_gates(dense, 0.7);
    EXPECT_EQ(count_op(g, "block_gated_linear"), static_cast<int>(e.layers.size()));
    EXPECT_EQ(count_op(g, "conv2d"), count_op(dense, "conv2d"));  // convolutions stay dense
    EXPECT_EQ(g.node(g.output()).op, "linear");                    // and so does the output layer
    for (const Node& n : g.nodes())
      if (n.op == "block_gated_linear") {
        EXPECT_EQ(n.attrs.at("blocks"), 8);
        EXPECT_EQ(n.attrs.at("top_k"), 2);
      }
    for (auto& [name, width] : e.layers) {
      // The layer keeps its weights (shared with the dense model).
      EXPECT_EQ(g.params().at(name + ".weight").value.data<float>(), dense.params().at(name + ".weight").value.data<float>());
      EXPECT_EQ(g.params().at(name + ".gate_weight").value.shape(), (Shape{8, dense.params().at(name + ".weight").value.dim(1)}));
      EXPECT_EQ(g.params().at(name + ".bias").value.shape(), (Shape{width}));  // cnn-bn's fc1 had none: zeros
    }
    // Dense FLOPs are the original model's; active FLOPs about a quarter of the gated layers'.
    Executor dense_ex(dense);
    EXPECT_DOUBLE_EQ(dense_flops_per_sample(g), dense_ex.flops_per_sample());
    EXPECT_LT(active_flops_per_sample(g), dense_flops_per_sample(g));
    // Trainable: forward and backward run, the gate network gets gradients.
    Executor ex(g);
    ex.set_training(true);
    ex.forward({random_tensor({4, 1, 28, 28}, 1)});
    ex.backward(random_tensor({4, 10}, 2));
    double norm = 0;
    const Tensor& dgw = ex.grad("fc1.gate_weight");
    for (int64_t i = 0; i < dgw.numel(); ++i) norm += std::abs(dgw.data<float>()[i]);
    EXPECT_GT(norm, 0.0);
  }
  // mlp 784-512-256-10, two of eight blocks: 2 * (784 * (8 + 128) + 512 * (8 + 64) + 256 * 10)
  // multiply-adds, plus one per ReLU element (512 + 256) as the executor counts them.
  Graph mlp = with_input_gates(build_preset("mlp", {1, 28, 28}, 10, 0), 0.7);
  EXPECT_DOUBLE_EQ(active_flops_per_sample(mlp), 2.0 * (784 * (8 + 128) + 512 * (8 + 64) + 256 * 10) + 512 + 256);
}

TEST(InputGates, ModelsWithoutAReplaceableLayerAreRejected) {
  ModelBuilder one({6}, 0);
  one.linear(3);  // only an output layer
  expect_error([&] { with_input_gates(one.finish(), 0.5); }, {"no hidden linear layer"});
  expect_error([] { with_input_gates(build_preset("mlp", {6}, 3, 0), 0.5, 7); }, {"divisible by 7"});
}

TEST(InputGates, ModelFileKeepsTheGatedLayers) {
  Graph g = with_input_gates(build_preset("mlp", {12}, 3, 0), 0.5);
  TempDir dir;
  save_model(dir.file("input.leanai"), g, json::object());
  LoadedModel m = load_model(dir.file("input.leanai"));
  EXPECT_EQ(count_op(m.graph, "block_gated_linear"), 2);
  Executor a(g), b(m.graph);
  const Tensor x = random_tensor({5, 12}, 3);
  Tensor ya = a.forward({x}).clone();
  EXPECT_EQ(max_abs_diff(ya, b.forward({x})), 0.0);
}

// An MLP whose hidden layers each run 2 of 8 blocks per input learns the
// eight blobs, and the compiled Plan computes what the executor does.
TEST(InputGatedTraining, LearnsAndRunsInThePlan) {
  set_num_threads(1);
  auto train = blobs(2000, 2), test = blobs(1000, 3);
  ModelBuilder b({16}, 0);
  b.linear(64).activation("relu").linear(64).activation("relu").linear(8);
  Graph model = with_input_gates(b.finish(), 0.75, 8, 1);
  TrainConfig cfg;
  cfg.epochs = 4;
  cfg.batch_size = 50;
  cfg.optimizer.lr = 3e-3f;
  Trainer trainer(model, Task::classification, 8, cfg);
  for (int e = 0; e < cfg.epochs; ++e) trainer.train_epoch(train);
  EXPECT_GT(evaluate(model, *test).accuracy, 0.85) << "chance is 0.125";

  Tensor x = Tensor::empty({100, 16});
  std::copy_n(test->features().data<float>(), x.numel(), x.data<float>());
  Graph o = optimize_for_inference(model);
  EXPECT_EQ(count_op(o, "block_gated_linear"), 2);
  CompileOptions untimed;
  untimed.tune = false;
  Plan plan(model, untimed);
  Executor ex(model);
  EXPECT_LT(max_abs_diff(ex.forward({x}), plan.run(x)), 1e-4);
}

// 128 inputs -> a block-gated layer of 256 (2 of its 8 blocks per input) -> ReLU -> 4.
Graph block_gated_net() {
  ModelBuilder b({128}, 0);
  b.linear(256).activation("relu").linear(4);
  return with_input_gates(b.finish(), 0.75, 8, 1);
}

// A Plan that takes oneDNN's default kernels instead of timing candidates.
Plan untimed_plan(const Graph& model) {
  CompileOptions untimed;
  untimed.tune = false;
  return Plan(model, untimed);
}

// In a compiled Plan the gate and block GEMMs run on weights packed once
// (packed_gemm.h), in the executor on dnnl_sgemm: the same outputs at batch 1,
// at a small batch, and at one large enough that the blocks split over the
// threads.
TEST(BlockGatedLinear, CompiledPlanMatchesTheExecutor) {
  const int threads = num_threads();
  set_num_threads(2);
  Graph model = block_gated_net();
  Plan plan = untimed_plan(model);
  Executor ex(model);
  for (int64_t batch : {1, 7, 300}) {
    const Tensor x = random_tensor({batch, 128}, static_cast<uint64_t>(batch));
    const Tensor want = ex.forward({x}).clone();
    EXPECT_LT(max_abs_diff(want, plan.run(x)), 1e-4) << "batch " << batch;
  }
  // Two inputs alive at once, alternated: the copy into the arena reads each
  // run's own input.
  const Tensor a = random_tensor({1, 128}, 98), c = random_tensor({1, 128}, 99);
  const Tensor want_a = ex.forward({a}).clone(), want_c = ex.forward({c}).clone();
  ASSERT_GT(max_abs_diff(want_a, want_c), 1e-3);
  for (int i = 0; i < 2; ++i) {
    EXPECT_LT(max_abs_diff(want_a, plan.run(a)), 1e-4);
    EXPECT_LT(max_abs_diff(want_c, plan.run(c)), 1e-4);
  }
  set_num_threads(threads);
}

// The block-gated layer reads the model's input from the arena: it is copied
// in by a memcpy, not a oneDNN reorder, and the ReLU after the layer (a plain
// f32 value) runs leanai's loop, not oneDNN's eltwise primitive: at batch 1
// each of those primitives cost 1.5-2.4 us.
TEST(BlockGatedLinear, CompiledPlanCopiesAndActivatesWithoutOneDnn) {
  Plan plan = untimed_plan(block_gated_net());
  std::vector<std::string> kinds;
  for (const PlanStep& s : plan.steps(1)) kinds.push_back(s.kind);
  ASSERT_GE(kinds.size(), 3u);
  EXPECT_EQ(kinds[0], "copy");
  EXPECT_EQ(kinds[1], "kernel:block_gated_linear");
  EXPECT_EQ(kinds[2], "kernel:relu");
}

}  // namespace
}  // namespace leanai
