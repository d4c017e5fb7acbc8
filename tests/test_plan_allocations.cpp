// A compiled Plan's own code runs without allocating (DESIGN.md:
// "plan.run(inputs) allocates nothing in steady state"). At batch 1 a heap
// allocation and its free are a measurable share of a small net's
// microsecond, so this binary replaces the global operator new with one that
// counts its calls. (oneDNN 2.6 builds a map of its arguments inside every
// primitive's execute, so plans with oneDNN steps are not held to zero.)
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "graph_fixtures.h"
#include "leanai/core/threads.h"
#include "leanai/nn/model_builder.h"
#include "leanai/runtime/plan.h"
#include "leanai/sparse/input_gates.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

// Not under AddressSanitizer, whose own operators track which allocator
// each block came from (the counting is for the plain build).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCounting = false;
#else
constexpr bool kCounting = true;
// GCC, inlining these into the standard allocators, sees free() meet memory
// from operator new; in a replacement operator new that memory is malloc's.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace leanai {
namespace {

using namespace test_support;

// Allocations over `runs` calls of plan.run(x), after two that compile and settle it.
long allocations_per_runs(Plan& plan, const Tensor& x, int runs) {
  plan.run(x);
  plan.run(x);
  const long before = allocations.load();
  for (int i = 0; i < runs; ++i) plan.run(x);
  return allocations.load() - before;
}

// Linear layers on leanai's packed GEMM at batch 1 and 3, split over two
// threads (fc1, 80 KB) and on one core, the model's input re-pointed per run.
TEST(PlanAllocations, PackedLinearPlanRunsWithoutAllocating) {
  if (!kCounting) GTEST_SKIP() << "operator new is AddressSanitizer's in this build";
  const int threads = num_threads();
  set_num_threads(2);
  setenv("LEANAI_LINEAR_KERNEL", "packed", 1);
  const Graph g = two_layer_mlp();
  for (int64_t batch : {1, 3}) {
    Plan plan(g);
    EXPECT_EQ(allocations_per_runs(plan, random_tensor({batch, 256}, 5), 10), 0) << "batch " << batch;
    int packed = 0;
    for (const PlanStep& s : plan.steps(batch)) packed += s.detail.find("packed GEMM") != std::string::npos;
    EXPECT_EQ(packed, 2);
  }
  unsetenv("LEANAI_LINEAR_KERNEL");
  set_num_threads(threads);
}

// A block-gated layer (a leanai kernel step, its input copied into the
// arena) and the ReLU after it, at batch 1.
TEST(PlanAllocations, BlockGatedPlanRunsWithoutAllocating) {
  if (!kCounting) GTEST_SKIP() << "operator new is AddressSanitizer's in this build";
  ModelBuilder b({64}, 0);
  b.linear(128).activation("relu").linear(4);
  Graph g = with_input_gates(b.finish(), 0.75, 8, 1);
  setenv("LEANAI_LINEAR_KERNEL", "packed", 1);  // the last layer: oneDNN's execute allocates
  CompileOptions untimed;
  untimed.tune = false;
  Plan plan(g, untimed);
  EXPECT_EQ(allocations_per_runs(plan, random_tensor({1, 64}, 5), 10), 0);
  std::vector<std::string> kinds;
  for (const PlanStep& s : plan.steps(1)) kinds.push_back(s.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"copy", "kernel:block_gated_linear", "kernel:relu", "linear"}));
  unsetenv("LEANAI_LINEAR_KERNEL");
}

// A MoE layer (router, one shared and two of eight routed experts) between
// packed linear layers, at batch 1.
TEST(PlanAllocations, MoePlanRunsWithoutAllocating) {
  if (!kCounting) GTEST_SKIP() << "operator new is AddressSanitizer's in this build";
  setenv("LEANAI_LINEAR_KERNEL", "packed", 1);
  Graph g = ModelBuilder({64}, 0).linear(64).activation("relu").moe(8, 2, 32, 1).linear(5).finish();
  CompileOptions untimed;
  untimed.tune = false;
  Plan plan(g, untimed);
  EXPECT_EQ(allocations_per_runs(plan, random_tensor({1, 64}, 5), 10), 0);
  int moe = 0;
  for (const PlanStep& s : plan.steps(1)) moe += s.kind == "kernel:moe";
  EXPECT_EQ(moe, 1);
  unsetenv("LEANAI_LINEAR_KERNEL");
}

// The counter counts: a run that builds a string is seen.
TEST(PlanAllocations, TheCounterSeesAnAllocation) {
  if (!kCounting) GTEST_SKIP() << "operator new is AddressSanitizer's in this build";
  const long before = allocations.load();
  std::string* s = new std::string(100, 'x');
  delete s;
  EXPECT_GE(allocations.load() - before, 2);
}

}  // namespace
}  // namespace leanai
