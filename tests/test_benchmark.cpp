// time_interleaved: several runners timed side by side, in turns.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "leanai/runtime/benchmark.h"

namespace leanai {
namespace {

TEST(TimeInterleaved, RunnersTakeTurnsInBlocksUntilEachHasItsRuns) {
  std::vector<int> calls;  // which runner ran, in order
  std::vector<std::function<void()>> runs = {[&] { calls.push_back(0); }, [&] { calls.push_back(1); }};
  TimingSettings t;
  t.warmup_runs = 3;
  t.max_runs = 3000;  // a block of these near-free runs is 1000 runs: three turns each
  t.max_seconds = 600;
  const std::vector<LatencyStats> stats = time_interleaved(runs, 1, t);
  ASSERT_EQ(stats.size(), 2u);
  for (const LatencyStats& s : stats) EXPECT_EQ(s.runs, 3000);
  int turns = 0;
  for (size_t i = 1; i < calls.size(); ++i) turns += calls[i] != calls[i - 1];
  // Warm-ups, then blocks: 0 1 | 0 1 0 1 0 1. Timed one after the other would give 1 or 3.
  EXPECT_GE(turns, 6);
  // Timed runs, warm-ups and each block's untimed runs (block sizes come from a first timing).
  for (int r : {0, 1}) EXPECT_GE(std::count(calls.begin(), calls.end(), r), 3000 + 3);
}

TEST(TimeInterleaved, EachRunnerKeepsItsOwnTimes) {
  auto spin_us = [](int us) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  std::vector<std::function<void()>> runs = {[&] { spin_us(300); }, [] {}};
  TimingSettings t;
  t.warmup_runs = 1;
  t.min_runs = 10;
  t.max_runs = 40;
  const std::vector<LatencyStats> stats = time_interleaved(runs, 4, t);
  EXPECT_GE(stats[0].p50_ms, 0.3);
  EXPECT_LT(stats[1].p50_ms, 0.3);
}

}  // namespace
}  // namespace leanai
