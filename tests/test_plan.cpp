// The compiled runtime: same outputs as the Executor on the original graph,
// the layouts and fusions it claims, no buffer created in steady state (oneDNN's
// execute() still makes small heap allocations for its argument map), clear
// errors on bad input; and the memory planner and kernel-choice cache alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "graph_fixtures.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/executor.h"
#include "leanai/nn/models.h"
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/lower_packed_linear.h"
#include "leanai/runtime/memory_planner.h"
#include "leanai/runtime/plan.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using namespace test_support;

constexpr double kTolerance = 1e-4;

// Kernel choices measured by these tests are cached in a temp dir, not in $HOME.
const TempDir kCacheDir;
const bool kCacheDirSet = setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1) == 0;

double plan_vs_executor(const Graph& g, const Tensor& x, CompileOptions options = {}) {
  Graph reference = g;
  Executor ex(reference);
  Tensor want = ex.forward({x}).clone();
  Plan plan(g, options);
  const Tensor& got = plan.run(x);
  EXPECT_EQ(got.shape(), want.shape());
  return max_abs_diff(want, got);
}

TEST(Plan, MatchesTheExecutorOnResidualNet) {
  for (int64_t batch : {1, 5}) EXPECT_LT(plan_vs_executor(residual_net(), random_tensor({batch, 3, 12, 12}, batch)), kTolerance);
}

TEST(Plan, CompilesAConvFollowedByTwoAdds) {
  // relu(conv(s) + s) + s: the compiled layers fuse one residual add each; the
  // second stays an add of its own.
  Graph g;
  NetBuilder b(g, 5);
  const int x = g.add_input("input", {3, 12, 12});
  const int s = g.add("relu", {b.conv("stem", x, 3, 8, 3, 1, true)});
  const int y = g.add("relu", {g.add("add", {b.conv("conv", s, 8, 8, 3, 1, true), s})});
  g.set_output(g.add("add", {y, s}));
  for (int64_t batch : {1, 4}) EXPECT_LT(plan_vs_executor(g, random_tensor({batch, 3, 12, 12}, batch)), kTolerance);
}

TEST(Plan, MatchesTheExecutorOnActivationMlp) {
  for (int64_t batch : {1, 9}) EXPECT_LT(plan_vs_executor(activation_mlp(), random_tensor({batch, 20}, batch)), kTolerance);
}

TEST(Plan, MatchesTheExecutorOnThePresets) {
  for (const char* preset : {"mlp", "cnn", "cnn-bn"}) {
    SCOPED_TRACE(preset);
    Graph g = build_preset(preset, {1, 28, 28}, 10, 3);
    // Non-trivial running statistics, so folding batch-norm is really exercised.
    for (auto& [name, p] : g.params())
      if (name.ends_with("running_var"))
        for (int64_t i = 0; i < p.value.numel(); ++i) p.value.data<float>()[i] = 0.5f + 0.01f * static_cast<float>(i % 50);
    for (int64_t batch : {1, 4}) EXPECT_LT(plan_vs_executor(g, random_tensor({batch, 1, 28, 28}, 7)), kTolerance);
  }
}

TEST(Plan, SplitsABatchIntoChunksAndWorkersWithoutChangingOutputs) {
  Tensor x = random_tensor({10, 3, 12, 12}, 3);  // chunks of 4, 4 and a tail of 2
  for (int workers : {1, 2}) {
    CompileOptions o;
    o.chunk = 4;
    o.workers = workers;
    SCOPED_TRACE(workers);
    EXPECT_LT(plan_vs_executor(residual_net(), x, o), kTolerance);
  }
  CompileOptions o;
  o.chunk = 4;
  o.workers = 2;
  Plan plan(residual_net(), o);
  plan.run(x);
  const int64_t buffers = Buffer::created();
  plan.run(x);
  EXPECT_EQ(Buffer::created(), buffers);
  const PlanMemory m = plan.memory(10);
  EXPECT_GT(m.arena_bytes, 0);
}

// With oneDNN's preferred kernels (no timing, so the check is the same on
// every machine and run): layouts chain from layer to layer.
TEST(Plan, KeepsBlockedLayoutsBetweenFusedOps) {
  TempDir no_cache;
  setenv("LEANAI_CACHE_DIR", no_cache.path().c_str(), 1);
  CompileOptions untimed;
  untimed.tune = false;
  Plan plan(residual_net(), untimed);
  int reorders = 0, convs = 0;
  for (const PlanStep& s : plan.steps(8)) {
    reorders += s.kind == "reorder";
    convs += s.kind == "conv2d";
    EXPECT_NE(s.kind, "batchnorm");
    EXPECT_EQ(s.kind.rfind("eltwise", 0), std::string::npos) << s.name;
    EXPECT_EQ(s.kind.rfind("kernel", 0), std::string::npos) << s.name;
  }
  EXPECT_EQ(convs, 6);
  std::string listing;
  for (const PlanStep& s : plan.steps(8)) listing += s.name + " " + s.kind + " " + s.detail + "\n";
  EXPECT_LE(reorders, 1) << "at most the input enters a blocked layout:\n" << listing;
  setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1);
}

TEST(Plan, SharesActivationMemoryByLiveness) {
  Plan plan(residual_net());
  PlanMemory m = plan.memory(16);
  EXPECT_GT(m.arena_bytes, 0);
  EXPECT_LT(m.arena_bytes, m.unshared_bytes);
  EXPECT_GT(m.weight_bytes, 0);
}

TEST(Plan, SteadyStateRunsAllocateNothing) {
  Plan plan(residual_net());
  Tensor x = random_tensor({4, 3, 12, 12}, 1);
  plan.run(x);
  const int64_t buffers = Buffer::created();
  for (int i = 0; i < 5; ++i) plan.run(x);
  EXPECT_EQ(Buffer::created(), buffers);
}

TEST(Plan, WrongInputShapeIsAClearError) {
  Plan plan(activation_mlp());
  try {
    plan.run(random_tensor({2, 21}, 1));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input has shape [2, 21], the model expects [N, 20]"), std::string::npos)
        << e.what();
  }
}

TEST(Plan, RunsOpsWithoutALoweringThroughTheirKernel) {
  Graph g;
  int x = g.add_input("input", {6});
  int y = g.add("linear", {x, g.add_param("w", random_tensor({6, 6}, 1)), g.add_param("b", random_tensor({6}, 2))});
  y = g.add("softmax", {g.add("add", {y, g.add_param("offset", random_tensor({6}, 3))})});
  g.set_output(y);
  EXPECT_LT(plan_vs_executor(g, random_tensor({3, 6}, 4)), 1e-5);
}

void check_packed_linear_at_small_batch(const std::string& form) {
  Graph g;
  NetBuilder b(g, 9);
  const int x = g.add_input("input", {2, 10, 13});
  int y = g.add("flatten", {x});
  y = g.add("relu", {g.add("linear", {y, b.param("fc1.weight", {70, 260}, 0.1f), b.param("fc1.bias", {70}, 0.1f)})});
  y = g.add("linear", {y, b.param("fc2.weight", {33, 70}, 0.2f)});
  g.set_output(g.add("linear", {y, b.param("fc3.weight", {5, 33}, 0.2f), b.param("fc3.bias", {5}, 0.1f)}));
  for (int64_t batch : {1, 3, 9}) {
    EXPECT_LT(plan_vs_executor(g, random_tensor({batch, 2, 10, 13}, static_cast<uint64_t>(batch))), kTolerance)
        << "batch " << batch;
    Plan plan(g);
    int packed = 0, split = 0;
    for (const PlanStep& s : plan.steps(batch)) {
      packed += s.detail.find("packed GEMM") != std::string::npos;
      split += s.detail.find("over the threads") != std::string::npos;
    }
    EXPECT_EQ(packed, batch <= 4 ? 3 : 0) << form << ", batch " << batch;
    // Only fc1 is large enough to split.
    EXPECT_EQ(split, batch <= 4 && form == "packed" ? 1 : 0) << form << ", batch " << batch;
  }
}

// Each run reads the tensor it is given: the first step reads the caller's
// input in place (leanai's packed GEMM through Instance::input, oneDNN's
// inner product through its re-pointed memory), so a step holding on to the
// first run's address would give the first run's answer again.
TEST(Plan, EachRunReadsItsOwnInput) {
  Graph g;
  NetBuilder b(g, 11);
  int y = g.add_input("input", {40});
  y = g.add("relu", {g.add("linear", {y, b.param("fc1.weight", {24, 40}, 0.2f), b.param("fc1.bias", {24}, 0.1f)})});
  g.set_output(g.add("linear", {y, b.param("fc2.weight", {6, 24}, 0.2f)}));
  for (const char* kernel : {"packed", "inner_product"}) {
    setenv("LEANAI_LINEAR_KERNEL", kernel, 1);
    Plan plan(g);
    const Tensor a = random_tensor({1, 40}, 1), c = random_tensor({1, 40}, 2);
    plan.run(a);
    const std::vector<PlanStep> steps = plan.steps(1);
    ASSERT_FALSE(steps.empty());
    EXPECT_EQ(steps[0].kind, "linear") << kernel << ": the first step reads the input in place";
    EXPECT_EQ(steps[0].detail.find("packed GEMM") != std::string::npos, std::string(kernel) == "packed") << kernel;
    Graph reference = g;
    Executor ex(reference);
    EXPECT_LT(max_abs_diff(ex.forward({c}), plan.run(c)), kTolerance) << kernel;
    EXPECT_LT(max_abs_diff(ex.forward({a}), plan.run(a)), kTolerance) << kernel;
  }
  unsetenv("LEANAI_LINEAR_KERNEL");
}

// The packed GEMM lowering of a linear layer on a few rows (batch 1),
// forced, split over two threads and on one core: flatten of a 4-D input
// read in place, bias and ReLU fused, no bias, 70 outputs (5 strips of 16) x
// 260 inputs (over 64 KB: the threads split the strips 2 + 3), and a batch above
// kPackedLinearMaxRows, where oneDNN's kernels run instead.
TEST(Plan, PackedLinearAtSmallBatchMatchesTheExecutor) {
  const int threads = num_threads();
  set_num_threads(2);
  for (const char* form : {"packed", "packed-one-core"}) {
    setenv("LEANAI_LINEAR_KERNEL", form, 1);
    check_packed_linear_at_small_batch(form);
  }
  unsetenv("LEANAI_LINEAR_KERNEL");
  set_num_threads(threads);
}

// A batch of 8 run as two chunks of 4. By the calling thread, each chunk's
// packed layer (80 KB) splits over both threads. On two workers at once,
// each worker's plan runs inside a parallel region on one thread, so it is
// compiled for one thread: the layer runs on one core and says so.
TEST(Plan, WorkerPlansAreCompiledForOneThread) {
  const int threads = num_threads();
  set_num_threads(2);
  setenv("LEANAI_LINEAR_KERNEL", "packed", 1);
  const Graph g = two_layer_mlp(6);
  const Tensor x = random_tensor({8, 256}, 4);
  for (int workers : {1, 2}) {
    CompileOptions o;
    o.chunk = 4;
    o.workers = workers;
    EXPECT_LT(plan_vs_executor(g, x, o), kTolerance) << workers << " worker(s)";
    Plan plan(g, o);
    int split = 0;
    for (const PlanStep& s : plan.steps(8)) split += s.detail.find("over the threads") != std::string::npos;
    EXPECT_EQ(split, workers == 1 ? 1 : 0) << workers << " worker(s)";
    EXPECT_EQ(num_threads(), 2) << "compiling a worker's plan gives the thread count back";
  }
  unsetenv("LEANAI_LINEAR_KERNEL");
  set_num_threads(threads);
}

// At batch 1 a packed layer that may split over the threads is timed split
// and on one core in the whole net, and the faster form is what the plan runs
// and reports; the choice is cached beside the kernel choices. Untimed (or
// with the kernel forced) the lowering's choice stands and nothing is timed.
TEST(Plan, SplitOrOneCoreIsTimedInTheWholeNet) {
  const int threads = num_threads();
  set_num_threads(2);
  const Graph g = two_layer_mlp(8);  // fc1: 80 x 256, 80 KB, may split
  const Tensor x = random_tensor({1, 256}, 9);
  auto settled_forms = [] {  // as kernel_choices.json records them
    std::vector<std::string> forms;
    std::ifstream in(kernel_cache_path());
    if (!in) return forms;
    const nlohmann::json choices = nlohmann::json::parse(in);
    for (const auto& [key, value] : choices.items())
      if (key.find("split or not") != std::string::npos && key.find(" plan ") != std::string::npos)
        forms.push_back(value.get<std::string>());
    return forms;
  };
  bool fc1_on_onednn = false;
  for (const std::string how : {"untimed", "forced", "timed"}) {
    TempDir cache;
    setenv("LEANAI_CACHE_DIR", cache.path().c_str(), 1);
    if (how == "forced") setenv("LEANAI_LINEAR_KERNEL", "packed", 1);
    CompileOptions o;
    o.tune = how != "untimed";
    EXPECT_LT(plan_vs_executor(g, x, o), kTolerance) << how;
    Plan plan(g, o);
    plan.run(x);
    const std::vector<std::string> forms = settled_forms();
    int split = 0, packed = 0;
    bool fc1_packed = false, first_linear = true;
    for (const PlanStep& s : plan.steps(1)) {
      const bool is_packed = s.detail.rfind("leanai packed GEMM", 0) == 0;
      split += s.detail.find("over the threads") != std::string::npos;
      packed += is_packed;
      if (s.kind == "linear" && first_linear) fc1_packed = is_packed, first_linear = false;
    }
    if (how == "untimed") {
      EXPECT_EQ(packed, 0) << "untimed: oneDNN's inner product";
    }
    if (how == "forced") {
      EXPECT_EQ(packed, 2);
    }
    if (how == "timed" && fc1_packed) {
      ASSERT_EQ(forms.size(), 1u) << "one layer may split";
      EXPECT_TRUE(forms[0] == "split" || forms[0] == "one core") << forms[0];
      EXPECT_EQ(split, forms[0] == "split" ? 1 : 0) << "the plan runs the settled form";
    } else {
      EXPECT_TRUE(forms.empty()) << how;
    }
    // Which kernel runs fc1 when timed is the lowering's choice: an
    // instrumented build (ASan) can find oneDNN's faster, leaving no split.
    fc1_on_onednn = how == "timed" && !fc1_packed;
    unsetenv("LEANAI_LINEAR_KERNEL");
  }
  setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1);
  set_num_threads(threads);
  if (fc1_on_onednn) GTEST_SKIP() << "timed, fc1 ran oneDNN's kernel here: no split to settle";
}

// The same after a convolution, whose output oneDNN keeps in its own layout
// (nhwc or nChw16c, as oneDNN or the timing picks): the packed weights'
// columns follow that layout, so the layer reads it in place. (Padding, as in
// nChw16c with 20 channels, is covered by FeatureOrderFollowsTheLayout.)
// Batch 9 runs oneDNN's kernels.
TEST(Plan, PackedLinearReadsAConvolutionsLayoutInPlace) {
  setenv("LEANAI_LINEAR_KERNEL", "packed", 1);
  Graph g;
  NetBuilder b(g, 4);
  const int x = g.add_input("input", {1, 9, 9});
  int y = g.add("relu", {b.conv("conv1", x, 1, 32, 3, 1, true)});
  y = g.add("relu", {b.conv("conv2", y, 32, 20, 3, 1, true)});
  y = g.add("flatten", {y});
  y = g.add("relu", {g.add("linear", {y, b.param("fc1.weight", {40, 20 * 81}, 0.05f), b.param("fc1.bias", {40}, 0.1f)})});
  g.set_output(g.add("linear", {y, b.param("fc2.weight", {7, 40}, 0.2f)}));
  for (bool tune : {false, true})
    for (int64_t batch : {1, 4, 9}) {
      CompileOptions options;
      options.tune = tune;
      EXPECT_LT(plan_vs_executor(g, random_tensor({batch, 1, 9, 9}, static_cast<uint64_t>(batch)), options), kTolerance)
          << "batch " << batch << (tune ? " timed" : " untimed");
      Plan plan(g, options);
      int packed = 0, reorders_into_fc = 0, in_place = 0;
      bool conv_wrote_plain = false;
      std::string listing;
      for (const PlanStep& s : plan.steps(batch)) {
        packed += s.detail.find("packed GEMM") != std::string::npos;
        in_place += s.detail.find("reads 4-D in its layout") != std::string::npos;
        reorders_into_fc += s.kind == "reorder" && s.name.rfind("linear", 0) == 0;
        if (s.name == "conv2") conv_wrote_plain = s.detail.find("-> nchw") != std::string::npos;
        listing += s.name + " " + s.kind + " " + s.detail + "\n";
      }
      EXPECT_EQ(packed, batch <= 4 ? 2 : 0) << listing;
      EXPECT_EQ(reorders_into_fc, 0) << listing;
      EXPECT_EQ(in_place, batch <= 4 && !conv_wrote_plain ? 1 : 0) << listing;
    }
  unsetenv("LEANAI_LINEAR_KERNEL");
}

// A first layer on leanai's small-channel f32 kernel, forced, in each of its
// forms: with the 2x2 pool after it fused (1 input channel) or not (3
// channels, stride 2, read by oneDNN's next convolution directly), on one
// core or its rows over the threads (batch 1), samples over the threads
// (batch 9); bias and ReLU fused, the nChw16c output read by oneDNN's next
// convolution and then a linear layer.
TEST(Plan, SmallChannelConvMatchesTheExecutor) {
  const int threads = num_threads();
  set_num_threads(2);  // the rows-over-threads candidate exists with 2 threads or more
  for (int64_t in_c : {1, 3}) {
    Graph g;
    NetBuilder b(g, 5);
    const int x = g.add_input("input", {in_c, 12, 12});
    const bool pooled = in_c == 1;
    const int64_t stride = pooled ? 1 : 2, side = 6;  // after conv1 and the pool, or conv1 at stride 2
    int y = g.add("relu", {b.conv("conv1", x, in_c, 16, 3, stride, true)});
    if (pooled) y = g.add("maxpool2d", {y}, {{"kernel", {2, 2}}});
    y = g.add("relu", {b.conv("conv2", y, 16, 32, 3, 1, pooled)});
    g.set_output(g.add("linear", {g.add("flatten", {y}), b.param("fc.weight", {5, 32 * side * side}, 0.05f)}));
    const std::string name = std::string("leanai small-channel") + (pooled ? " + pool" : "");
    for (const auto& [batch, kernel] : std::vector<std::pair<int64_t, std::string>>{
             {1, name}, {1, name + ", rows over threads"}, {9, name}}) {
      setenv("LEANAI_CONV_KERNEL", kernel.c_str(), 1);
      EXPECT_LT(plan_vs_executor(g, random_tensor({batch, in_c, 12, 12}, static_cast<uint64_t>(batch + in_c))),
                kTolerance)
          << kernel << ", batch " << batch;
      Plan plan(g);
      std::string listing;
      int small = 0, pools = 0;
      for (const PlanStep& s : plan.steps(batch)) {
        small += s.detail.rfind(kernel + " f32", 0) == 0;
        pools += s.kind == "pooling";
        listing += s.name + " " + s.kind + " " + s.detail + "\n";
      }
      EXPECT_EQ(small, 1) << listing;  // conv1 only: conv2 has 16 input channels
      EXPECT_EQ(pools, 0) << listing;  // fused, or none in the graph
    }
  }
  unsetenv("LEANAI_CONV_KERNEL");
  set_num_threads(threads);
}

// The pool is fused only when it is a 2x2 max pool at stride 2 and the
// layer's only reader. Here the layer feeds two such pools, or one at stride
// 1: each pool stays a step of its own after leanai's unfused kernel.
TEST(Plan, SmallChannelConvFusesOnlyAPoolItFeedsAlone) {
  setenv("LEANAI_CONV_KERNEL", "leanai small-channel", 1);
  for (bool two_readers : {true, false}) {
    Graph g;
    NetBuilder b(g, 6);
    const int x = g.add_input("input", {1, 12, 12});
    const int c = g.add("relu", {b.conv("conv1", x, 1, 16, 3, 1, true)});
    int y;
    if (two_readers) {
      const int left = g.add("maxpool2d", {c}, {{"kernel", {2, 2}}});
      const int right = g.add("maxpool2d", {c}, {{"kernel", {2, 2}}});
      y = g.add("flatten", {g.add("add", {left, right})});  // 16 x 6 x 6
    } else {
      y = g.add("flatten", {g.add("maxpool2d", {c}, {{"kernel", {2, 2}}, {"stride", {1, 1}}})});  // 16 x 11 x 11
    }
    const int64_t features = two_readers ? 16 * 36 : 16 * 121;
    g.set_output(g.add("linear", {y, b.param("fc.weight", {5, features}, 0.05f)}));
    for (int64_t batch : {1, 9}) {
      EXPECT_LT(plan_vs_executor(g, random_tensor({batch, 1, 12, 12}, static_cast<uint64_t>(batch))), kTolerance);
      Plan plan(g);
      std::string listing;
      int small = 0, pools = 0;
      for (const PlanStep& s : plan.steps(batch)) {
        small += s.detail.rfind("leanai small-channel f32", 0) == 0;
        pools += s.kind == "pooling";
        listing += s.name + " " + s.kind + " " + s.detail + "\n";
      }
      EXPECT_EQ(small, 1) << listing;
      EXPECT_EQ(pools, two_readers ? 2 : 1) << listing;
    }
  }
  unsetenv("LEANAI_CONV_KERNEL");
}

// Where each feature of a sample lies in a layout, which the packed linear
// layer's weight columns follow: plain, nhwc, nChw16c with channels padded
// (20 -> 32, padding numbered 0), chwn, whose samples interleave (none), and
// u8 NHWC (the same order as f32).
TEST(Plan, FeatureOrderFollowsTheLayout) {
  using dnnl::memory;
  using runtime::lower::feature_at_position;
  auto desc = [](const Shape& s, memory::format_tag tag) {
    return memory::desc(memory::dims(s.begin(), s.end()), memory::data_type::f32, tag);
  };
  std::vector<int64_t> plain = feature_at_position(desc({2, 5}, memory::format_tag::ab), {2, 5});
  EXPECT_EQ(plain, (std::vector<int64_t>{1, 2, 3, 4, 5}));

  const std::vector<int64_t> nhwc = feature_at_position(desc({2, 3, 4, 5}, memory::format_tag::nhwc), {2, 3, 4, 5});
  ASSERT_EQ(nhwc.size(), 60u);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t w = 0; w < 5; ++w)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(nhwc[(h * 5 + w) * 3 + c], c * 20 + h * 5 + w + 1);

  const std::vector<int64_t> blocked =
      feature_at_position(desc({3, 20, 2, 3}, memory::format_tag::nChw16c), {3, 20, 2, 3});
  ASSERT_EQ(blocked.size(), 32u * 6u);
  for (int64_t c = 0; c < 32; ++c)
    for (int64_t hw = 0; hw < 6; ++hw)
      EXPECT_EQ(blocked[(c / 16) * 6 * 16 + hw * 16 + c % 16], c < 20 ? c * 6 + hw + 1 : 0) << c << " " << hw;

  EXPECT_TRUE(feature_at_position(desc({4, 3, 2, 2}, memory::format_tag::chwn), {4, 3, 2, 2}).empty());

  // The order is the layout's, whatever the element type (the int8 flatten reads u8 NHWC).
  const memory::desc u8_nhwc({2, 3, 4, 5}, memory::data_type::u8, memory::format_tag::nhwc);
  EXPECT_EQ(feature_at_position(u8_nhwc, {2, 3, 4, 5}), nhwc);
}

TEST(MemoryPlanner, DisjointLifetimesShareAndOverlappingOnesDoNot) {
  // A chain a -> b -> c: a and c can share; b overlaps both.
  MemoryPlan p = plan_memory({{1000, 0, 1}, {2000, 1, 2}, {1000, 2, 3}});
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
  EXPECT_EQ(p.arena_bytes, 2048 + 1024);
  Rng rng(5);
  std::vector<BufferRequest> reqs;
  for (int i = 0; i < 60; ++i) {
    int first = static_cast<int>(rng.below(40));
    reqs.push_back({static_cast<int64_t>(1 + rng.below(5000)), first, first + static_cast<int>(rng.below(6))});
  }
  MemoryPlan q = plan_memory(reqs);
  for (size_t i = 0; i < reqs.size(); ++i)
    for (size_t j = i + 1; j < reqs.size(); ++j) {
      const bool live_together = reqs[i].first_step <= reqs[j].last_step && reqs[j].first_step <= reqs[i].last_step;
      const bool bytes_overlap = q.offsets[i] < q.offsets[j] + reqs[j].bytes && q.offsets[j] < q.offsets[i] + reqs[i].bytes;
      EXPECT_FALSE(live_together && bytes_overlap) << i << " and " << j;
    }
  EXPECT_LE(q.arena_bytes, q.unshared_bytes);
}

TEST(KernelChoice, PicksTheFasterCandidateAndRemembersIt) {
  ASSERT_TRUE(kCacheDirSet);
  test_support::TempDir dir;
  setenv("LEANAI_CACHE_DIR", dir.path().c_str(), 1);
  int slow_runs = 0, fast_runs = 0;
  std::vector<KernelCandidate> candidates = {
      {"slow", [&] { ++slow_runs; std::this_thread::sleep_for(std::chrono::microseconds(300)); }},
      {"fast", [&] { ++fast_runs; }}};
  EXPECT_EQ(choose_kernel("test key", candidates, true), 1);
  EXPECT_GT(slow_runs, 0);
  slow_runs = fast_runs = 0;
  EXPECT_EQ(choose_kernel("test key", candidates, true), 1);  // from the cache: nothing timed
  EXPECT_EQ(slow_runs + fast_runs, 0);
  std::ofstream(kernel_cache_path()) << "{ not json";
  EXPECT_EQ(choose_kernel("test key", candidates, true), 1);  // a damaged cache is re-measured
  setenv("LEANAI_CACHE_DIR", kCacheDir.path().c_str(), 1);
}

}  // namespace
}  // namespace leanai
