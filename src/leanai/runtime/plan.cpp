#include "leanai/runtime/plan.h"

#include <chrono>
#include <cstring>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/plan_instance.h"

namespace leanai {

Plan::Plan(const Graph& graph, CompileOptions options) : graph_(optimize_for_inference(graph)), options_(options) {
  graph_.validate();
  check(graph_.inputs().size() == 1, "plan: the model must have exactly one input, it has " +
                                         std::to_string(graph_.inputs().size()));
  if (options_.threads > 0) set_num_threads(options_.threads);
  flush_denormals();
}

Plan::~Plan() = default;

runtime::Instance& Plan::instance_for(int64_t batch) {
  check(batch >= 1, "plan: the batch size must be >= 1");
  auto it = instances_.find(batch);
  if (it != instances_.end()) return *it->second;
  return *(instances_[batch] = runtime::lower_graph(graph_, batch, options_.tune, options_.allow_winograd));
}

const Tensor& Plan::run(const Tensor& x) {
  const int in = graph_.inputs()[0];
  const Shape sample = graph_.input_sample_shape(in);
  Shape want = {x.rank() > 0 ? x.dim(0) : 0};
  want.insert(want.end(), sample.begin(), sample.end());
  check(x.defined() && x.dtype() == DType::f32 && x.shape() == want && x.is_contiguous() && want[0] >= 1,
        "input has shape " + (x.defined() ? shape_str(x.shape()) : std::string("(none)")) + ", the model expects [N, " +
            shape_str(sample).substr(1) + " (f32)");
  if (options_.threads > 0 && num_threads() != options_.threads) set_num_threads(options_.threads);
  return run_in_chunks(x, chunk_size(x.dim(0)));
}

void Plan::run_instance(runtime::Instance& inst, const void* input) {
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

// A large batch runs as consecutive chunks through a plan compiled for the
// chunk size, so each chunk's activations stay in cache from one layer to the
// next (a batch of 256 CNN activations does not fit in L2; a chunk of 16 does).
const Tensor& Plan::run_in_chunks(const Tensor& x, int64_t chunk) {
  const int64_t n = x.dim(0);
  if (chunk >= n) {
    runtime::Instance& inst = instance_for(n);
    run_instance(inst, x.raw());
    return inst.output;
  }
  const size_t in_bytes = x.nbytes() / static_cast<size_t>(n);
  Tensor* out = nullptr;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    runtime::Instance& inst = instance_for(len);
    run_instance(inst, static_cast<const char*>(x.raw()) + start * in_bytes);
    if (!out) {
      auto it = chunked_outputs_.find(n);
      if (it == chunked_outputs_.end()) {
        Shape s = inst.output.shape();
        s[0] = n;
        it = chunked_outputs_.emplace(n, Tensor::empty(s)).first;
      }
      out = &it->second;
    }
    const size_t out_bytes = inst.output.nbytes() / static_cast<size_t>(len);
    std::memcpy(static_cast<char*>(out->raw()) + start * out_bytes, inst.output.raw(), len * out_bytes);
  }
  return *out;
}

int64_t Plan::chunk_size(int64_t batch) {
  auto it = chunks_.find(batch);
  if (it != chunks_.end()) return it->second;
  int64_t chosen = batch;
  std::vector<int64_t> sizes = {batch};
  for (int64_t c : {8, 16, 32, 64})
    if (2 * c <= batch) sizes.push_back(c);
  if (sizes.size() > 1) {
    Shape s = graph_.input_sample_shape(graph_.inputs()[0]);
    s.insert(s.begin(), batch);
    Tensor probe = Tensor::zeros(s);
    std::vector<KernelCandidate> candidates;
    for (int64_t c : sizes)
      candidates.push_back({c == batch ? "whole batch" : "chunks of " + std::to_string(c),
                            [this, &probe, c] { run_in_chunks(probe, c); }});
    const std::string fingerprint = std::to_string(std::hash<std::string>{}(graph_.to_json().dump()));
    chosen = sizes[choose_kernel("plan " + fingerprint + " batch " + std::to_string(batch), candidates, options_.tune)];
  }
  chunks_[batch] = chosen;
  return chosen;
}

std::vector<PlanStep> Plan::steps(int64_t batch) {
  std::vector<PlanStep> out;
  for (auto& step : instance_for(std::min(batch, chunk_size(batch))).steps) out.push_back(step->info);
  return out;
}

PlanMemory Plan::memory(int64_t batch) {
  const int64_t chunk = std::min(batch, chunk_size(batch));
  PlanMemory m = instance_for(chunk).memory;
  if (chunk < batch) {
    if (batch % chunk) {  // the last, shorter chunk has a plan of its own
      const PlanMemory tail = instance_for(batch % chunk).memory;
      m.arena_bytes += tail.arena_bytes;
      m.unshared_bytes += tail.unshared_bytes;
      m.weight_bytes += tail.weight_bytes;
      m.scratch_bytes += tail.scratch_bytes;
    }
    // The gathered output of the whole batch.
    m.arena_bytes += static_cast<int64_t>(instance_for(chunk).output.nbytes()) / chunk * batch;
  }
  return m;
}

void Plan::reset_profile() {
  for (auto& [batch, inst] : instances_)
    for (auto& step : inst->steps) {
      step->info.ms = 0.0;
      step->info.calls = 0;
    }
}

}  // namespace leanai
