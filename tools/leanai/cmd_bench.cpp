// leanai bench: latency percentiles, throughput, memory and per-layer time of
// a model run by the compiled runtime; --compare puts the unoptimized
// Executor (what training and `eval` use) beside it, and several models are
// timed side by side, each against the first.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
  std::vector<std::string> models;  // several: timed side by side
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
  std::string model;
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

// A compiled plan with its input, built from a fresh load, so its memory is
// what a deployment holding only that runner would hold (the plan drops the
// loaded graph). One run compiles it before the heap is read.
struct PlanRunner {
  std::string model;
  std::unique_ptr<Plan> plan;
  Tensor x;
  double memory_mb = 0;
};

PlanRunner build_plan(const BenchOptions& o, const std::string& model, int64_t batch) {
  PlanRunner r{model, nullptr, {}, 0};
  const int64_t heap0 = heap_bytes_in_use();
  {
    Graph g = load_model_graph(model, o.input_shape, o.classes);
    r.x = random_model_input(g, batch);
    r.plan = std::make_unique<Plan>(g, CompileOptions{o.threads, true});
  }
  r.plan->run(r.x);
  r.memory_mb = static_cast<double>(heap_bytes_in_use() - heap0 - static_cast<int64_t>(r.x.nbytes())) / 1048576.0;
  return r;
}

std::vector<PlanStep> profile_steps(PlanRunner& r, int64_t batch, const TimingSettings& t) {
  r.plan->set_profiling(true);
  TimingSettings quick = t;
  quick.max_seconds = std::min(t.max_seconds, 1.0);
  time_runs([&] { r.plan->run(r.x); }, batch, quick);
  r.plan->set_profiling(false);
  return r.plan->steps(batch);
}

Row plan_row(const PlanRunner& r, int64_t batch, double flops, const LatencyStats& s) {
  return {r.model, "leanai", batch, s, r.memory_mb, flops, flops * s.samples_per_s / 1e9};
}

Row bench_executor(const BenchOptions& o, int64_t batch, double flops, const TimingSettings& t) {
  const std::string& model = o.models.front();
  const int64_t heap0 = heap_bytes_in_use();
  Graph g = load_model_graph(model, o.input_shape, o.classes);
  Tensor x = random_model_input(g, batch);
  Executor ex(g);
  LatencyStats s = time_runs([&] { ex.forward({x}); }, batch, t);
  const double mb = static_cast<double>(heap_bytes_in_use() - heap0 - static_cast<int64_t>(x.nbytes())) / 1048576.0;
  return {model, "unoptimized", batch, s, mb, flops, flops * s.samples_per_s / 1e9};
}

json row_json(const Row& r) {
  return {{"model", r.model},         {"runner", r.runner},        {"batch", r.batch},
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

void print_header(const char* runner, const char* extra) {
  std::printf("%-6s %-12s %9s %9s %9s %12s %8s %10s%s%s\n", "batch", runner, "p50 ms", "p90 ms", "p99 ms", "samples/s",
              "GFLOP/s", "memory MB", *extra ? " " : "", extra);
}

void print_row(const Row& r, const std::string& extra = "") {
  std::printf("%-6lld %-12s %9s %9s %9s %12.0f %8.1f %10.2f%s%s\n", static_cast<long long>(r.batch), r.runner.c_str(),
              ms_text(r.stats.p50_ms).c_str(), ms_text(r.stats.p90_ms).c_str(), ms_text(r.stats.p99_ms).c_str(),
              r.stats.samples_per_s, r.gflops, r.memory_mb, extra.empty() ? "" : " ", extra.c_str());
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
  const Graph g = load_model_graph(o.models.front(), o.input_shape, o.classes);
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

struct ModelFlops {
  double all = 0, active = 0;  // active: what the compiled plan runs
};

ModelFlops model_flops(const BenchOptions& o, const std::string& model) {
  // The Executor runs every neuron of a gated model (masking the off ones);
  // the compiled plan runs its compacted form, so its GFLOP/s count only that.
  const Graph graph = load_model_graph(model, o.input_shape, o.classes);
  return {flops_per_sample(graph), active_flops_per_sample(graph)};
}

void print_model_line(const std::string& label, const ModelFlops& f) {
  if (f.active < f.all)
    std::printf("%s: %.2f MFLOP per sample, %.3f active (gated-off neurons not run), %d threads\n", label.c_str(),
                f.all / 1e6, f.active / 1e6, num_threads());
  else
    std::printf("%s: %.2f MFLOP per sample, %d threads\n", label.c_str(), f.all / 1e6, num_threads());
}

void print_steps(const std::vector<PlanStep>& layer_times, int64_t batch, const std::string& model, bool as_json) {
  double total = 0;
  for (const PlanStep& s : layer_times) total += s.ms;
  if (!as_json && !layer_times.empty()) {
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
    if (as_json) {
      print_json({{"model", model}, {"batch", batch}, {"layer", s.name}, {"kind", s.kind}, {"detail", s.detail},
                  {"ms", per_call}, {"samples_per_call", s.samples}, {"share", total > 0 ? s.ms / total : 0.0}});
    } else {
      std::printf("    %-28s %-16s %9s ms %5.1f%%  %s\n", s.name.c_str(), s.kind.c_str(), ms_text(per_call).c_str(),
                  total > 0 ? 100.0 * s.ms / total : 0.0, s.detail.c_str());
    }
  }
}

// One model: the compiled plan, and with --compare the Executor beside it.
void bench_one(const BenchOptions& o, const Shape& batches, const TimingSettings& t) {
  const ModelFlops f = model_flops(o, o.models.front());
  if (!o.json) {
    print_model_line(o.models.front(), f);
    print_header("runner", "");
  }
  for (int64_t batch : batches) {
    PlanRunner runner = build_plan(o, o.models.front(), batch);
    const Row after = plan_row(runner, batch, f.active, time_runs([&] { runner.plan->run(runner.x); }, batch, t));
    std::optional<Row> before;
    if (o.compare) before = bench_executor(o, batch, f.all, t);
    if (o.json) {
      print_json(row_json(after));
      if (before) print_json(row_json(*before));
    } else {
      if (before) print_row(*before);
      print_row(after);
      if (before) print_change(*before, after);
    }
    if (o.layers) print_steps(profile_steps(runner, batch, t), batch, runner.model, o.json);
  }
}

// Several models timed side by side (time_interleaved), each against the
// first: on a shared machine their ratio then compares like with like.
void bench_side_by_side(const BenchOptions& o, const Shape& batches, const TimingSettings& t) {
  std::vector<ModelFlops> flops;
  for (const std::string& m : o.models) flops.push_back(model_flops(o, m));
  auto label = [](size_t i) { return "[" + std::to_string(i + 1) + "]"; };
  if (!o.json) {
    std::printf("timed side by side, in turns of about 5 ms each:\n");
    for (size_t i = 0; i < o.models.size(); ++i) print_model_line(label(i) + " " + o.models[i], flops[i]);
    print_header("model", "vs [1]");
  }
  for (int64_t batch : batches) {
    // Each model compiled once before its plan is measured, so the kernel
    // choices cached by the first are not counted in its memory alone.
    for (const std::string& m : o.models) build_plan(o, m, batch);
    std::vector<PlanRunner> runners;
    std::vector<std::function<void()>> runs;
    for (const std::string& m : o.models) runners.push_back(build_plan(o, m, batch));
    for (PlanRunner& r : runners) runs.push_back([&r] { r.plan->run(r.x); });
    const std::vector<LatencyStats> stats = time_interleaved(runs, batch, t);
    for (size_t i = 0; i < runners.size(); ++i) {
      Row row = plan_row(runners[i], batch, flops[i].active, stats[i]);
      const double speedup = stats[0].p50_ms / stats[i].p50_ms;
      if (o.json) {
        json j = row_json(row);
        j["speedup_vs_first"] = speedup;
        print_json(j);
      } else {
        row.runner = label(i);
        print_row(row, fmt::format("{:.2f}x", speedup));
      }
    }
    if (!o.layers) continue;
    for (size_t i = 0; i < runners.size(); ++i) {
      if (!o.json) std::printf("  %s\n", label(i).c_str());
      print_steps(profile_steps(runners[i], batch, t), batch, runners[i].model, o.json);
    }
  }
}

void run_bench(const BenchOptions& o) {
  const bool several = o.models.size() > 1;
  check(!several || (o.recommend.empty() && !o.compare),
        "--recommend and --compare take one model; give one model, or drop them to time several side by side");
  if (!o.recommend.empty()) return run_recommend(o);
  apply_threads(o.threads);
  check(o.seconds > 0 && o.seconds <= 600, "--seconds must be in (0, 600]");
  const Shape batches = parse_shape(o.batches, "--batch");
  TimingSettings t;
  t.max_seconds = o.seconds;
  t.max_runs = o.runs;
  if (several)
    bench_side_by_side(o, batches, t);
  else
    bench_one(o, batches, t);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Latency, throughput, memory and per-layer time of a model on this CPU");
  cmd->add_option("model", opt->models,
                  "model file, preset name or JSON spec; several are timed side by side, each against the first")
      ->required();
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
