#include "leanai/runtime/plan.h"

#include <chrono>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/kernels/dnnl_context.h"
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
  return *(instances_[batch] = runtime::lower_graph(graph_, batch, options_.tune));
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
  runtime::Instance& inst = instance_for(x.dim(0));
  for (dnnl::memory& m : inst.input_memories) m.set_data_handle(x.raw());
  if (!profiling_) {
    for (auto& step : inst.steps) step->run();
  } else {
    for (auto& step : inst.steps) {
      auto t0 = std::chrono::steady_clock::now();
      step->run();
      step->info.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      step->info.calls++;
    }
  }
  return inst.output;
}

std::vector<PlanStep> Plan::steps(int64_t batch) {
  std::vector<PlanStep> out;
  for (auto& step : instance_for(batch).steps) out.push_back(step->info);
  return out;
}

PlanMemory Plan::memory(int64_t batch) { return instance_for(batch).memory; }

void Plan::reset_profile() {
  for (auto& [batch, inst] : instances_)
    for (auto& step : inst->steps) {
      step->info.ms = 0.0;
      step->info.calls = 0;
    }
}

}  // namespace leanai
