// leanai bench: latency percentiles, throughput, memory and per-layer time of
// a model run by the compiled runtime; --compare puts the unoptimized
// Executor (what training and `eval` use) beside it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/hw/parallel_strategy.h"
#include "leanai/runtime/benchmark.h"
#include "leanai/runtime/plan.h"

namespace leanai::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string batches = "1,256";
  std::string input_shape = "1,28,28";
  int64_t classes = 10;
  int threads = 0;
  double seconds = 2.0;
  int runs = 2000;
  bool compare = false;
  bool layers = false;
  bool json = false;
  std::string recommend;  // "", latency or throughput
  int64_t train_batch = 128;
};

struct Row {
  std::string runner;
  int64_t batch;
  LatencyStats stats;
  double memory_mb;
  double flops_per_sample;  // what this runner computes (active FLOPs for the plan)
  double gflops;
};

double flops_per_sample(Graph g) {
  Executor ex(g);
  ex.forward({random_model_input(g, 1)});
  return ex.flops_per_sample();
}

// Each runner is built from a fresh load, so its memory is what a deployment
// holding only that runner would hold (the plan drops the loaded graph).
Row bench_plan(const BenchOptions& o, int64_t batch, double flops, const TimingSettings& t,
               std::vector<PlanStep>* layer_times) {
  const int64_t heap0 = heap_bytes_in_use();
  std::optional<Plan> plan;
  Tensor x;
  {
    Graph g = load_model_graph(o.model, o.input_shape, o.classes);
    x = random_model_input(g, batch);
    plan.emplace(g, CompileOptions{o.threads, true});
  }
  LatencyStats s = time_runs([&] { plan->run(x); }, batch, t);
  const double mb = static_cast<double>(heap_bytes_in_use() - heap0 - static_cast<int64_t>(x.nbytes())) / 1048576.0;
  if (layer_times) {
    plan->set_profiling(true);
    TimingSettings quick = t;
    quick.max_seconds = std::min(t.max_seconds, 1.0);
    time_runs([&] { plan->run(x); }, batch, quick);
    *layer_times = plan->steps(batch);
  }
  return {"leanai", batch, s, mb, flops, flops * s.samples_per_s / 1e9};
}

Row bench_executor(const BenchOptions& o, int64_t batch, double flops, const TimingSettings& t) {
  const int64_t heap0 = heap_bytes_in_use();
  Graph g = load_model_graph(o.model, o.input_shape, o.classes);
  Tensor x = random_model_input(g, batch);
  Executor ex(g);
  LatencyStats s = time_runs([&] { ex.forward({x}); }, batch, t);
  const double mb = static_cast<double>(heap_bytes_in_use() - heap0 - static_cast<int64_t>(x.nbytes())) / 1048576.0;
  return {"unoptimized", batch, s, mb, flops, flops * s.samples_per_s / 1e9};
}

json row_json(const BenchOptions& o, const Row& r) {
  return {{"model", o.model},         {"runner", r.runner},        {"batch", r.batch},
          {"threads", num_threads()}, {"p50_ms", r.stats.p50_ms},  {"p90_ms", r.stats.p90_ms},
          {"p99_ms", r.stats.p99_ms}, {"mean_ms", r.stats.mean_ms}, {"runs", r.stats.runs},
          {"samples_per_s", r.stats.samples_per_s}, {"flops_per_sample", r.flops_per_sample},
          {"gflops", r.gflops}, {"memory_mb", r.memory_mb}};
}

// Milliseconds in fixed notation, 4 decimals, more (up to 6) below 0.01 ms:
// a 0.83 us net prints as 0.000830, where 4 decimals said 0.0008.
std::string ms_text(double ms) {
  const bool small = ms > 0 && std::isfinite(ms);
  const int decimals = small ? std::clamp(3 - static_cast<int>(std::floor(std::log10(ms))), 4, 6) : 4;
  return fmt::format("{:.{}f}", ms, decimals);
}

void print_row(const Row& r) {
  std::printf("%-6lld %-12s %9s %9s %9s %12.0f %8.1f %10.2f\n", static_cast<long long>(r.batch), r.runner.c_str(),
              ms_text(r.stats.p50_ms).c_str(), ms_text(r.stats.p90_ms).c_str(), ms_text(r.stats.p99_ms).c_str(),
              r.stats.samples_per_s, r.gflops, r.memory_mb);
}

void print_change(const Row& before, const Row& after) {
  auto pct = [](double from, double to) { return fmt::format("{:+.0f}%", 100.0 * (to - from) / from); };
  std::printf("%-6lld %-12s %9s %9s %9s %12s %8s %10s\n", static_cast<long long>(after.batch), "change",
              pct(before.stats.p50_ms, after.stats.p50_ms).c_str(), pct(before.stats.p90_ms, after.stats.p90_ms).c_str(),
              pct(before.stats.p99_ms, after.stats.p99_ms).c_str(),
              pct(before.stats.samples_per_s, after.stats.samples_per_s).c_str(), "",
              pct(before.memory_mb, after.memory_mb).c_str());
}

void run_recommend(const BenchOptions& o) {
  const Graph g = load_model_graph(o.model, o.input_shape, o.classes);
  const ServingGoal goal = o.recommend == "latency" ? ServingGoal::latency : ServingGoal::throughput;
  ServingAdvice s = advise_serving(g, goal, o.threads, std::min(o.seconds, 1.0));
  TrainingAdvice t = advise_training(g, o.train_batch);
  if (o.json) {
    json measured = json::array();
    for (const ServingConfig& c : s.measured)
      measured.push_back({{"threads", c.threads}, {"streams", c.streams}, {"batch", c.batch}, {"p50_ms", c.p50_ms},
                          {"p99_ms", c.p99_ms}, {"samples_per_s", c.samples_per_s}});
    print_json({{"goal", o.recommend},
                {"measured", measured},
                {"serving", {{"threads", s.best.threads}, {"streams", s.best.streams}, {"batch", s.best.batch}, {"why", s.why}}},
                {"training", {{"strategy", t.strategy}, {"replica_bytes", t.replica_bytes},
                              {"activation_bytes_per_sample", t.activation_bytes_per_sample},
                              {"max_batch_per_worker", t.max_batch_per_worker}, {"why", t.why},
                              {"beyond_one_machine", t.beyond_one_machine}}}});
    return;
  }
  std::printf("serving, goal %s (measured, %s each):\n", o.recommend.c_str(), fmt::format("{:.1f} s", std::min(o.seconds, 1.0)).c_str());
  std::printf("  %-8s %-8s %-6s %9s %9s %12s\n", "threads", "streams", "batch", "p50 ms", "p99 ms", "samples/s");
  for (const ServingConfig& c : s.measured)
    std::printf("  %-8d %-8d %-6lld %9s %9s %12.0f%s\n", c.threads, c.streams, static_cast<long long>(c.batch),
                ms_text(c.p50_ms).c_str(), ms_text(c.p99_ms).c_str(), c.samples_per_s,
                c.threads == s.best.threads && c.streams == s.best.streams && c.batch == s.best.batch ? "  <- best" : "");
  std::printf("recommendation: %d thread(s) per request, %d stream(s), batch %lld\n  %s\n", s.best.threads,
              s.best.streams, static_cast<long long>(s.best.batch), s.why.c_str());
  std::printf("training at batch %lld: %s\n  %s\n  beyond one machine: %s\n", static_cast<long long>(o.train_batch),
              t.strategy.c_str(), t.why.c_str(), t.beyond_one_machine.c_str());
}

void run_bench(const BenchOptions& o) {
  if (!o.recommend.empty()) return run_recommend(o);
  apply_threads(o.threads);
  check(o.seconds > 0 && o.seconds <= 600, "--seconds must be in (0, 600]");
  Shape batches = parse_shape(o.batches, "--batch");
  // The Executor runs every neuron of a gated model (masking the off ones);
  // the compiled plan runs its compacted form, so its GFLOP/s count only that.
  const Graph graph = load_model_graph(o.model, o.input_shape, o.classes);
  const double flops = flops_per_sample(graph);
  const double active_flops = active_flops_per_sample(graph);
  TimingSettings t;
  t.max_seconds = o.seconds;
  t.max_runs = o.runs;
  if (!o.json) {
    if (active_flops < flops)
      std::printf("%s: %.2f MFLOP per sample, %.3f active (gated-off neurons not run), %d threads\n", o.model.c_str(),
                  flops / 1e6, active_flops / 1e6, num_threads());
    else
      std::printf("%s: %.2f MFLOP per sample, %d threads\n", o.model.c_str(), flops / 1e6, num_threads());
    std::printf("%-6s %-12s %9s %9s %9s %12s %8s %10s\n", "batch", "runner", "p50 ms", "p90 ms", "p99 ms",
                "samples/s", "GFLOP/s", "memory MB");
  }
  for (int64_t batch : batches) {
    std::vector<PlanStep> layer_times;
    Row after = bench_plan(o, batch, active_flops, t, o.layers ? &layer_times : nullptr);
    std::optional<Row> before;
    if (o.compare) before = bench_executor(o, batch, flops, t);
    if (o.json) {
      print_json(row_json(o, after));
      if (before) print_json(row_json(o, *before));
    } else {
      if (before) print_row(*before);
      print_row(after);
      if (before) print_change(*before, after);
    }
    if (!o.layers) continue;
    double total = 0;
    for (const PlanStep& s : layer_times) total += s.ms;
    if (!o.json && !layer_times.empty()) {
      const long long per_call = layer_times[0].samples;
      if (per_call < batch) {
        std::printf("    per step: ms per call on a chunk of %lld samples (batch %lld runs as chunks), share of the time\n",
                    per_call, static_cast<long long>(batch));
      } else {
        std::printf("    per step: ms per call on the whole batch, share of the time\n");
      }
    }
    for (const PlanStep& s : layer_times) {
      const double per_call = s.calls ? s.ms / static_cast<double>(s.calls) : 0.0;
      if (o.json) {
        print_json({{"batch", batch}, {"layer", s.name}, {"kind", s.kind}, {"detail", s.detail}, {"ms", per_call},
                    {"samples_per_call", s.samples}, {"share", total > 0 ? s.ms / total : 0.0}});
      } else {
        std::printf("    %-28s %-16s %9s ms %5.1f%%  %s\n", s.name.c_str(), s.kind.c_str(), ms_text(per_call).c_str(),
                    total > 0 ? 100.0 * s.ms / total : 0.0, s.detail.c_str());
      }
    }
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Latency, throughput, memory and per-layer time of a model on this CPU");
  cmd->add_option("model", opt->model, "model file, preset name or JSON spec")->required();
  cmd->add_option("--batch", opt->batches, "batch sizes, comma-separated")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seconds", opt->seconds, "time budget per batch size and runner")->capture_default_str();
  cmd->add_option("--runs", opt->runs, "at most this many timed runs per batch size")->check(CLI::Range(10, 1000000))->capture_default_str();
  cmd->add_flag("--compare", opt->compare, "also run the unoptimized graph and print the change");
  cmd->add_flag("--layers", opt->layers, "time each compiled step");
  cmd->add_option("--input-shape", opt->input_shape, "for presets/specs: sample shape")->capture_default_str();
  cmd->add_option("--classes", opt->classes, "for presets/specs: number of outputs")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_option("--recommend", opt->recommend,
                  "measure thread/stream/batch splits and recommend one for this goal; also advise a training strategy")
      ->check(CLI::IsMember({"latency", "throughput"}));
  cmd->add_option("--train-batch", opt->train_batch, "with --recommend: the training batch size to advise for")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_flag("--json", opt->json, "JSON lines on stdout");
  cmd->callback([opt] { run_bench(*opt); });
}

}  // namespace leanai::cli
