// The training-strategy rule on known sizes, and the serving measurement's
// bookkeeping (no timing thresholds: only that every split was measured).
#include <gtest/gtest.h>

#include "graph_fixtures.h"
#include "leanai/hw/parallel_strategy.h"
#include "leanai/nn/models.h"

namespace leanai {
namespace {

TEST(TrainingAdvice, FollowsMemory) {
  Graph g = build_preset("mlp", {1, 28, 28}, 10, 1);
  const int64_t params = 535818 * 4;
  TrainingAdvice roomy = advise_training(g, 128, int64_t{1} << 30);
  EXPECT_EQ(roomy.strategy, "data-parallel");
  EXPECT_EQ(roomy.parameter_bytes, params);
  EXPECT_EQ(roomy.replica_bytes, 4 * params);
  EXPECT_GT(roomy.activation_bytes_per_sample, 2 * 4 * (784 + 512 + 256 + 10));
  EXPECT_NE(roomy.beyond_one_machine.find("allreduce"), std::string::npos);
  // Replica fits, a big batch does not: accumulate.
  const int64_t tight = (4 * params + 10 * roomy.activation_bytes_per_sample) * 10 / 8;
  TrainingAdvice accumulate = advise_training(g, 4096, tight);
  EXPECT_EQ(accumulate.strategy, "data-parallel + gradient accumulation");
  EXPECT_GE(accumulate.max_batch_per_worker, 9);
  EXPECT_LE(accumulate.max_batch_per_worker, 11);
  EXPECT_EQ(advise_training(g, 1, 3 * params * 10 / 8).strategy, "data-parallel + sharded optimizer state");
  EXPECT_EQ(advise_training(g, 1, params / 2).strategy, "pipeline (model) parallel");
}

TEST(ServingAdvice, MeasuresEverySplitAndPicksByGoal) {
  Graph g = test_support::activation_mlp();
  ServingAdvice t = advise_serving(g, ServingGoal::throughput, 2, 0.02, {1, 8});
  ASSERT_EQ(t.measured.size(), 4u);  // 1 thread x 2 streams and 2 x 1, two batch sizes each
  for (const ServingConfig& c : t.measured) {
    EXPECT_EQ(c.threads * c.streams, 2);
    EXPECT_GT(c.samples_per_s, 0.0);
    EXPECT_GE(t.best.samples_per_s, c.samples_per_s);
  }
  ServingAdvice l = advise_serving(g, ServingGoal::latency, 2, 0.02);
  ASSERT_EQ(l.measured.size(), 2u);
  for (const ServingConfig& c : l.measured) EXPECT_LE(l.best.p50_ms, c.p50_ms);
}

}  // namespace
}  // namespace leanai
