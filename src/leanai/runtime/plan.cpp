#include "leanai/runtime/plan.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>

#include <omp.h>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/threads.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/plan_instance.h"

namespace leanai {

Plan::Plan(const Graph& graph, CompileOptions options)
    : graph_(optimize_for_inference(graph)), options_(options), packed_(std::make_unique<runtime::PackedWeights>()) {
  graph_.validate();
  check(graph_.inputs().size() == 1, "plan: the model must have exactly one input, it has " +
                                         std::to_string(graph_.inputs().size()));
  sample_shape_ = graph_.input_sample_shape(graph_.inputs()[0]);
  if (options_.threads > 0) set_num_threads(options_.threads);
  flush_denormals();
}

Plan::~Plan() = default;

runtime::Instance& Plan::instance_for(int64_t batch, int worker) {
  check(batch >= 1, "plan: the batch size must be >= 1");
  auto key = std::make_pair(batch, worker);
  auto it = instances_.find(key);
  if (it != instances_.end()) return *it->second;
  std::unique_ptr<runtime::Instance> inst;
  {
    // A worker's plan runs inside a parallel region, on one thread: it is compiled (and its kernels timed) so.
    const ScopedThreads threads(worker == kCaller ? num_threads() : 1);
    inst = runtime::lower_graph(graph_, batch, options_.tune, options_.allow_winograd, *packed_);
  }
  if (worker == kCaller) settle_splits(*inst, batch);
  return *(instances_[key] = std::move(inst));
}

// Each step that can run split over the threads or on one core (a packed
// batch-1 layer) is timed both ways in the whole net, one step at a time in
// order, the earlier ones settled. The lowering timed the layer alone, where
// its input and weights sit in a timing loop's cache state, not the net's:
// Letter's dense 512 x 256 layer was split, and its net ran 9% faster at
// batch 1 with the layer on one core. Cached like the kernel choices; with
// timing off (or LEANAI_LINEAR_KERNEL set) the lowering's choice stands.
void Plan::settle_splits(runtime::Instance& inst, int64_t batch) {
  constexpr int kSettleRuns = 3;  // see choose_kernel
  if (const char* forced = std::getenv("LEANAI_LINEAR_KERNEL"); forced && *forced) return;
  std::vector<runtime::Step*> steps;
  for (auto& s : inst.steps)
    if (s->can_split()) steps.push_back(s.get());
  if (steps.empty()) return;
  const Tensor probe = probe_input(batch);
  // These runs are not the caller's: profiling is off for them, and as it was
  // again on leaving, also on a throw.
  struct Restore {
    bool& flag;
    const bool was;
    ~Restore() { flag = was; }
  } restore{profiling_, profiling_};
  profiling_ = false;
  std::string settled = "plan " + fingerprint() + " batch " + std::to_string(batch);
  for (runtime::Step* s : steps) {
    const bool first = s->split();  // the lowering's choice: kept when not timing
    std::vector<KernelCandidate> forms;
    for (bool split : {first, !first})
      forms.push_back({split ? "split" : "one core", [this, &inst, &probe, s, split] {
                         s->set_split(split);
                         run_instance(inst, probe.raw());
                       }});
    const int pick = choose_kernel(settled + ", " + s->info.name + " split or not", forms, options_.tune, kSettleRuns);
    s->set_split(pick == 0 ? first : !first);
    settled += ", " + s->info.name + (s->split() ? " split" : " one core");
  }
}

std::string Plan::fingerprint() const { return std::to_string(std::hash<std::string>{}(graph_.to_json().dump())); }

int Plan::workers_for(BatchSplit split, int64_t batch) {
  const int64_t chunk = std::min(split.chunk, batch);
  return static_cast<int>(std::min<int64_t>(split.workers, (batch + chunk - 1) / chunk));
}

bool Plan::runs_on(BatchSplit split, int64_t batch, std::pair<int64_t, int> key) {
  const int64_t chunk = std::min(split.chunk, batch);
  const int workers = workers_for(split, batch);
  const auto [size, worker] = key;
  const bool sized = size == chunk || size == batch % chunk;
  return sized && (workers > 1 ? worker >= 0 && worker < workers : worker == kCaller);
}

const Tensor& Plan::run(const Tensor& x) {
  // Checked without building anything: this is the hot path.
  const Shape& sample = sample_shape_;
  bool fits = x.defined() && x.dtype() == DType::f32 && x.is_contiguous() && x.rank() == static_cast<int>(sample.size()) + 1 &&
              x.dim(0) >= 1;
  for (size_t i = 0; fits && i < sample.size(); ++i) fits = x.shape()[i + 1] == sample[i];
  if (!fits)
    throw Error("input has shape " + (x.defined() ? shape_str(x.shape()) : std::string("(none)")) +
                ", the model expects [N, " + shape_str(sample).substr(1) + " (f32)");
  if (options_.threads > 0 && num_threads() != options_.threads) set_num_threads(options_.threads);
  return run_split(x, split_for(x.dim(0)));
}

void Plan::run_instance(runtime::Instance& inst, const void* input) {
  inst.input = input;
  for (dnnl::memory& m : inst.input_memories) m.set_data_handle(const_cast<void*>(input));
  if (!profiling_) {
    for (auto& step : inst.steps) step->run();
    return;
  }
  for (auto& step : inst.steps) {
    auto t0 = std::chrono::steady_clock::now();
    step->run();
    step->info.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step->info.calls++;
  }
}

// A large batch can run as chunks through a plan compiled for the chunk size,
// so each chunk's activations stay in cache from one layer to the next (256
// CNN activations do not fit in L2; 16 do), and the chunks can go to
// `workers` threads at once, each running single-threaded kernels on its own
// plan: no synchronisation inside a layer. Which split wins is measured.
const Tensor& Plan::run_split(const Tensor& x, BatchSplit split) {
  const int64_t n = x.dim(0);
  if (split.chunk >= n && split.workers == 1) {
    runtime::Instance& inst = instance_for(n);
    run_instance(inst, x.raw());
    return inst.output;
  }
  const int64_t chunk = std::min(split.chunk, n);
  const int64_t count = (n + chunk - 1) / chunk;
  const int workers = workers_for(split, n);
  auto key_of = [&](int w) { return workers > 1 ? w : kCaller; };
  // Plans are compiled (and their kernels chosen) here, before any thread runs.
  for (int w = 0; w < workers; ++w) {
    instance_for(chunk, key_of(w));
    if (n % chunk) instance_for(n % chunk, key_of(w));
  }
  auto it = chunked_outputs_.find(n);
  if (it == chunked_outputs_.end()) {
    Shape s = instance_for(chunk, key_of(0)).output.shape();
    s[0] = n;
    it = chunked_outputs_.emplace(n, Tensor::empty(s)).first;
  }
  Tensor& out = it->second;
  const size_t in_bytes = x.nbytes() / static_cast<size_t>(n);
  const size_t out_bytes = out.nbytes() / static_cast<size_t>(n);
  auto run_chunk = [&](int64_t c, int worker) {
    const int64_t start = c * chunk, len = std::min(chunk, n - start);
    runtime::Instance& inst = *instances_.find({len, key_of(worker)})->second;
    run_instance(inst, static_cast<const char*>(x.raw()) + start * in_bytes);
    std::memcpy(static_cast<char*>(out.raw()) + start * out_bytes, inst.output.raw(), len * out_bytes);
  };
  if (workers == 1) {
    for (int64_t c = 0; c < count; ++c) run_chunk(c, 0);
  } else {
    // Kernels called inside this region run on their calling thread only.
#pragma omp parallel num_threads(workers)
    {
      const int w = omp_get_thread_num();
      for (int64_t c = w; c < count; c += workers) run_chunk(c, w);
    }
  }
  return out;
}

Plan::BatchSplit Plan::split_for(int64_t batch) {
  auto it = splits_.find(batch);
  if (it != splits_.end()) return it->second;
  std::vector<BatchSplit> options;
  if (options_.chunk > 0 || options_.workers > 0) {
    options.push_back({options_.chunk > 0 ? options_.chunk : batch, std::max(1, options_.workers)});
  } else {
    options.push_back({batch, 1});
    const int threads = num_threads();
    for (int64_t c : {8, 16, 32, 64}) {
      if (2 * c <= batch) options.push_back({c, 1});
      if (threads > 1 && threads * c <= batch) options.push_back({c, threads});
    }
    if (threads > 1 && batch >= 2 * threads) options.push_back({(batch + threads - 1) / threads, threads});
  }
  BatchSplit chosen = options[0];
  if (options.size() > 1) {
    std::set<std::pair<int64_t, int>> before;
    for (auto& [key, inst] : instances_) before.insert(key);
    Tensor probe = probe_input(batch);
    std::vector<KernelCandidate> candidates;
    for (const BatchSplit& o : options)
      candidates.push_back({std::to_string(o.workers) + " worker(s) x chunks of " + std::to_string(o.chunk),
                            [this, &probe, o] { run_split(probe, o); }});
    const std::string key = "plan " + fingerprint() + " batch " + std::to_string(batch);
    chosen = options[choose_kernel(key, candidates, options_.tune)];
    // Drop the plans only the losing splits used (their arenas and packed weights).
    for (auto it = instances_.begin(); it != instances_.end();)
      it = before.count(it->first) || runs_on(chosen, batch, it->first) ? std::next(it) : instances_.erase(it);
    std::vector<const runtime::Instance*> users;
    for (auto& [key, inst] : instances_) users.push_back(inst.get());
    packed_->keep_only(users);
  }
  splits_[batch] = chosen;
  return chosen;
}

std::vector<PlanStep> Plan::steps(int64_t batch) {
  const BatchSplit split = split_for(batch);
  std::vector<PlanStep> out;
  const int64_t per_call = std::min(batch, split.chunk);
  for (auto& step : instance_for(per_call, workers_for(split, batch) > 1 ? 0 : kCaller).steps) {
    out.push_back(step->info);
    out.back().samples = per_call;
  }
  return out;
}

PlanMemory Plan::memory(int64_t batch) {
  const BatchSplit split = split_for(batch);
  const int64_t chunk = std::min(batch, split.chunk);
  if (chunk == batch && split.workers == 1) {
    PlanMemory m = instance_for(batch).memory;
    m.weight_bytes += packed_->bytes();
    return m;
  }
  run_split(probe_input(batch), split);  // compiles every plan the split uses
  PlanMemory m;
  for (auto& [key, inst] : instances_)
    if (runs_on(split, batch, key)) {
      m.arena_bytes += inst->memory.arena_bytes;
      m.unshared_bytes += inst->memory.unshared_bytes;
      m.scratch_bytes += inst->memory.scratch_bytes;
      m.weight_bytes = std::max(m.weight_bytes, inst->memory.weight_bytes);  // the same parameters
    }
  m.arena_bytes += static_cast<int64_t>(chunked_outputs_.at(batch).nbytes());  // the gathered output
  m.weight_bytes += packed_->bytes();
  return m;
}

namespace {
constexpr uint64_t kProbeSeed = 7;
}  // namespace

Tensor Plan::probe_input(int64_t batch) const {
  Shape s = graph_.input_sample_shape(graph_.inputs()[0]);
  s.insert(s.begin(), batch);
  // Not zeros: routed layers (moe, block_gated_linear) send every row of a
  // constant input to the same experts, one large GEMM that no real batch
  // runs, and the split timed on it would be chosen for the wrong work.
  Tensor t = Tensor::empty(s);
  Rng rng(kProbeSeed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal();
  return t;
}

void Plan::reset_profile() {
  for (auto& [batch, inst] : instances_)
    for (auto& step : inst->steps) {
      step->info.ms = 0.0;
      step->info.calls = 0;
    }
}

}  // namespace leanai
