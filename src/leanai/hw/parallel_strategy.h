// Parallel strategy: how to spend this machine's cores on a model.
//
// Serving: measured, not modelled. For each split of the cores into
// `streams` concurrent request streams of `threads` each, and each batch
// size, every stream runs its own compiled Plan on its own thread for a short
// while; the lowest-latency or highest-throughput split wins.
//
// Training: a rule from sizes (parameters, optimizer state, activations per
// sample) against the memory of one worker: data-parallel while a full
// replica fits, sharded or pipeline (model) parallel past that. The advice
// says how each extends across machines (MPI allreduce / pipeline stages).
#pragma once
#include <string>
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

enum class ServingGoal { latency, throughput };

struct ServingConfig {
  int threads = 1;  // per stream
  int streams = 1;  // concurrent requests
  int64_t batch = 1;
  double p50_ms = 0, p99_ms = 0;
  double samples_per_s = 0;  // all streams together
};

struct ServingAdvice {
  ServingGoal goal;
  std::vector<ServingConfig> measured;
  ServingConfig best;
  std::string why;
};

// `cores`: how many to spend (0 = all). Each configuration runs for
// `seconds_per_config`. Batches default to {1} for latency and
// {1, 16, 64, 256} for throughput.
ServingAdvice advise_serving(const Graph& graph, ServingGoal goal, int cores, double seconds_per_config,
                             std::vector<int64_t> batches = {});

struct TrainingAdvice {
  std::string strategy;  // "data-parallel", "data-parallel + sharded optimizer", "pipeline (model) parallel"
  int64_t parameter_bytes = 0;
  int64_t replica_bytes = 0;  // weights + gradients + Adam moments
  int64_t activation_bytes_per_sample = 0;
  int64_t max_batch_per_worker = 0;
  std::string why;
  std::string beyond_one_machine;
};

// `worker_memory_bytes`: what one worker may use (0 = this machine's RAM).
TrainingAdvice advise_training(const Graph& graph, int64_t batch, int64_t worker_memory_bytes = 0);

}  // namespace leanai
