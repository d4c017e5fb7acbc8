#include "leanai/hw/parallel_strategy.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/hw/topology.h"
#include "leanai/runtime/benchmark.h"
#include "leanai/runtime/plan.h"

namespace leanai {
namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// `streams` threads, each with its own Plan of `threads` OpenMP threads,
// running back to back for `seconds` after compiling and warming up together.
ServingConfig measure(const Graph& g, int threads, int streams, int64_t batch, double seconds) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<std::vector<double>> latencies(streams);
  std::vector<int64_t> samples(streams, 0);
  std::vector<std::string> errors(streams);
  std::vector<std::thread> pool;
  for (int s = 0; s < streams; ++s)
    pool.emplace_back([&, s] {
      try {
        set_num_threads(threads);  // this thread's OpenMP team
        Plan plan(g, CompileOptions{threads, true});
        Tensor x = random_model_input(g, batch, 3);
        for (int i = 0; i < 3; ++i) plan.run(x);
        ready++;
        while (!go) std::this_thread::yield();
        while (!stop) {
          auto t0 = std::chrono::steady_clock::now();
          plan.run(x);
          latencies[s].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
          samples[s] += batch;
        }
      } catch (const std::exception& e) {
        errors[s] = e.what();
        ready++;
      }
    });
  while (ready < streams) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto start = std::chrono::steady_clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const std::string& e : errors) check(e.empty(), e);
  ServingConfig c;
  c.threads = threads;
  c.streams = streams;
  c.batch = batch;
  std::vector<double> all;
  int64_t total = 0;
  for (int s = 0; s < streams; ++s) {
    all.insert(all.end(), latencies[s].begin(), latencies[s].end());
    total += samples[s];
  }
  c.p50_ms = percentile(all, 0.5);
  c.p99_ms = percentile(all, 0.99);
  c.samples_per_s = static_cast<double>(total) / elapsed;
  return c;
}

std::string gib(int64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30)); }
std::string mib(int64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

ServingAdvice advise_serving(const Graph& g, ServingGoal goal, int cores, double seconds, std::vector<int64_t> batches) {
  const ScopedThreads restore(num_threads());  // measure() changes the count
  if (cores <= 0) cores = std::max(1, probe_topology().affinity_cpus);  // the CPUs this process may use
  check(seconds > 0, "parallel strategy: the time per configuration must be > 0");
  if (batches.empty()) batches = goal == ServingGoal::latency ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 16, 64, 256};
  ServingAdvice advice;
  advice.goal = goal;
  for (int threads = 1; threads <= cores; ++threads) {
    if (cores % threads != 0) continue;
    for (int64_t batch : batches) advice.measured.push_back(measure(g, threads, cores / threads, batch, seconds));
  }
  // Latency: the lowest median at the smallest batch (a request is one sample);
  // throughput: the most samples per second.
  auto better = [&](const ServingConfig& a, const ServingConfig& b) {
    return goal == ServingGoal::latency ? a.p50_ms < b.p50_ms : a.samples_per_s > b.samples_per_s;
  };
  advice.best = *std::min_element(advice.measured.begin(), advice.measured.end(), better);
  const ServingConfig& b = advice.best;
  advice.why = goal == ServingGoal::latency
                   ? fmt::format("{} thread(s) per request with {} concurrent stream(s) gave the lowest median latency "
                                 "({:.3f} ms at batch {}); more threads per request stop paying once a layer's work "
                                 "is too small to split.",
                                 b.threads, b.streams, b.p50_ms, b.batch)
                   : fmt::format("{} stream(s) x {} thread(s) at batch {} gave the most samples per second ({:.0f}); "
                                 "independent streams avoid the synchronisation inside each layer, and larger batches "
                                 "amortise per-call overhead until the working set leaves the cache.",
                                 b.streams, b.threads, b.batch, b.samples_per_s);
  return advice;
}

TrainingAdvice advise_training(const Graph& g, int64_t batch, int64_t worker_memory) {
  check(batch >= 1, "parallel strategy: the batch size must be >= 1");
  if (worker_memory <= 0) worker_memory = probe_topology().total_memory_bytes;
  if (worker_memory <= 0) worker_memory = int64_t{8} << 30;  // not reported: assume a small machine
  TrainingAdvice a;
  for (auto& [name, p] : g.params()) a.parameter_bytes += static_cast<int64_t>(p.value.nbytes());
  // Weights, gradients and Adam's two moments: four copies of the parameters.
  a.replica_bytes = 4 * a.parameter_bytes;
  // Every activation is kept for backward and gets a gradient of its own.
  const std::vector<Shape> shapes = infer_shapes(g, 1);
  for (const Node& n : g.nodes())
    if (n.op != "param") a.activation_bytes_per_sample += 2 * shape_numel(shapes[n.id]) * 4;
  const int64_t usable = worker_memory * 8 / 10;  // leave room for the data, the runtime and the OS
  a.max_batch_per_worker = a.replica_bytes < usable
                               ? (usable - a.replica_bytes) / std::max<int64_t>(1, a.activation_bytes_per_sample)
                               : 0;
  const int64_t needed = a.replica_bytes + batch * a.activation_bytes_per_sample;
  if (needed <= usable) {
    a.strategy = "data-parallel";
    a.why = fmt::format("a full replica ({} of weights, gradients and Adam state) plus batch {} of activations ({}) "
                        "needs {} of the {} one worker has: every worker can hold the whole model, so split the "
                        "batch, not the model; within a machine, oneDNN already splits each layer across the cores.",
                        mib(a.replica_bytes), batch, mib(batch * a.activation_bytes_per_sample), mib(needed),
                        gib(worker_memory));
    a.beyond_one_machine = "one process per machine (Open MPI), each with a shard of every batch; average gradients "
                           "with an allreduce after backward; scale the learning rate with the global batch and warm "
                           "it up; communication per step is the gradient size, " + mib(a.parameter_bytes) + ".";
  } else if (a.replica_bytes <= usable) {
    a.strategy = "data-parallel + gradient accumulation";
    a.why = fmt::format("the replica fits ({}) but batch {} of activations does not: at most {} samples per worker "
                        "per pass; accumulate gradients over micro-batches to reach batch {}.",
                        mib(a.replica_bytes), batch, a.max_batch_per_worker, batch);
    a.beyond_one_machine = "as data-parallel: more machines shrink each one's micro-batch count; allreduce once per "
                           "global batch.";
  } else if (a.parameter_bytes * 2 <= usable) {
    a.strategy = "data-parallel + sharded optimizer state";
    a.why = fmt::format("weights and gradients fit ({}) but not the Adam moments as well: shard the optimizer state "
                        "across workers (ZeRO stage 1/2 style).",
                        mib(2 * a.parameter_bytes));
    a.beyond_one_machine = "each machine owns 1/N of the optimizer state; reduce-scatter gradients, update its "
                           "shard, all-gather weights.";
  } else {
    a.strategy = "pipeline (model) parallel";
    a.why = fmt::format("the weights alone ({}) exceed what one worker holds ({}): split the layers into stages by "
                        "memory and stream micro-batches through them.",
                        mib(a.parameter_bytes), mib(usable));
    a.beyond_one_machine = "one stage per machine, activations sent between neighbours; combine with data-parallel "
                           "replicas of the pipeline when there are more machines than stages.";
  }
  return a;
}

}  // namespace leanai
