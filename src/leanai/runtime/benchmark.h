// Measuring a runner the way `leanai bench` and bench/ report it: latency
// percentiles over many calls after a warm-up, throughput, and the heap a
// runner holds. Medians, not means, because machines here are shared.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

struct TimingSettings {
  int warmup_runs = 10;
  int min_runs = 10;
  int max_runs = 2000;
  double max_seconds = 2.0;  // stop timing after this (once min_runs are done)
};

struct LatencyStats {
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, mean_ms = 0;
  int64_t runs = 0;
  double samples_per_s = 0;  // batch / mean latency
};

LatencyStats time_runs(const std::function<void()>& run, int64_t batch, const TimingSettings& settings);

// Several runners timed side by side: blocks of about 5 ms of each take turns
// until every runner has its runs (settings apply to each; the time budget is
// max_seconds per runner). Their ratios then compare like with like on a
// shared machine, where load changes from one second to the next.
std::vector<LatencyStats> time_interleaved(const std::vector<std::function<void()>>& runs, int64_t batch,
                                           const TimingSettings& settings);

// A batch of standard-normal inputs for the graph's (single) input.
Tensor random_model_input(const Graph& graph, int64_t batch, uint64_t seed = 1);

// Bytes the C heap holds now (glibc mallinfo2: arenas plus mmap-ed blocks);
// the difference across building a runner is the memory that runner holds.
int64_t heap_bytes_in_use();

}  // namespace leanai
