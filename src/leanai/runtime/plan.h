// Plan: a Graph compiled for inference on this CPU, the fastest form leanai
// runs a model in.
//
//   Plan plan(load_model("m.leanai").graph);     // passes + lowering, once
//   const Tensor& logits = plan.run(x);          // x [N, ...]; allocates nothing
//
// Compiling applies optimize_for_inference (fold constants, remove gated-off
// neurons, fold batch-norms, fuse activations and residual adds as oneDNN
// post-ops), then lowers each node
// to a oneDNN primitive whose layouts oneDNN chooses (format_tag::any), with
// weights reordered into those layouts once. Consecutive primitives hand each
// other blocked tensors directly; a reorder appears only where a consumer wants
// another layout. Intermediate values live in one arena planned by liveness.
// Where two kernels can run a node (linear: oneDNN inner product or matmul),
// both are timed on this machine and the faster is cached (see kernel_choice.h).
// Ops without a oneDNN lowering run through their Executor kernel in plain layout.
// Quantized graphs (quant/precision.h) run on oneDNN's int8 and bf16 kernels,
// keeping u8/s8 or bf16 between layers where that is exact (lower_quantized.h).
//
// A plan is specialised per batch size on first use; later runs at that batch
// size reuse it. A batch of 16 or more may run as chunks through the plan of a
// smaller batch (activations then stay in cache between layers), and the
// chunks may run on several threads at once, each with single-threaded
// kernels (chosen by timing them on one thread); whichever split measures
// fastest is used and cached like the kernel choices.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

namespace runtime {
struct Instance;
class PackedWeights;
}

struct CompileOptions {
  int threads = 0;    // > 0: set the thread count used by every run
  bool tune = true;   // time alternative kernels and keep the faster (cached)
  // Let 3x3 convolutions use Winograd when it measures faster: outputs then
  // differ from direct convolution by rounding (~1e-6 relative), not more.
  bool allow_winograd = true;
  // How a large batch runs (see Plan::run): 0 = measured. chunk > 0 runs it as
  // chunks of that many samples; workers > 1 runs chunks on that many threads at once.
  int64_t chunk = 0;
  int workers = 0;
};

struct PlanStep {
  std::string name;    // the graph node it runs (or what it reorders)
  std::string kind;    // conv2d, linear, pooling, reorder, kernel:<op>, ...
  std::string detail;  // oneDNN implementation and layouts
  double ms = 0.0;     // total time while profiling
  int64_t calls = 0;
  int64_t samples = 0;  // per call: a large batch runs as chunks of this many
};

struct PlanMemory {
  int64_t arena_bytes = 0;     // activations, shared by liveness
  int64_t unshared_bytes = 0;  // what one buffer per activation would take
  int64_t weight_bytes = 0;    // packed weights and parameters the plan holds
  int64_t scratch_bytes = 0;   // oneDNN scratchpad, shared by all steps
};

class Plan {
 public:
  explicit Plan(const Graph& graph, CompileOptions options = {});
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  // Runs the model on x [N, ...sample shape]; the result (plain f32) stays
  // valid until the next run at the same batch size.
  const Tensor& run(const Tensor& x);

  const Graph& graph() const { return graph_; }  // after the inference passes
  // The compiled steps and memory at batch size `batch` (compiling it if new).
  std::vector<PlanStep> steps(int64_t batch);
  PlanMemory memory(int64_t batch);

  void set_profiling(bool enabled) { profiling_ = enabled; }
  void reset_profile();

 private:
  struct BatchSplit {
    int64_t chunk;  // samples per plan call
    int workers;    // threads running chunks at once (each with 1-thread kernels)
  };
  // Plans per (batch size, worker): kCaller's runs on the calling thread,
  // its kernels free to use every thread; worker w's (w >= 0) runs chunks
  // on its own arena inside a parallel region, on one thread, so it is
  // compiled with one thread: its kernels are timed (and oneDNN's
  // primitives made) as they will run.
  static constexpr int kCaller = -1;
  runtime::Instance& instance_for(int64_t batch, int worker = kCaller);
  // The plan keys a split of `batch` runs on: (chunk size or tail, worker).
  static int workers_for(BatchSplit split, int64_t batch);
  static bool runs_on(BatchSplit split, int64_t batch, std::pair<int64_t, int> key);
  void run_instance(runtime::Instance& inst, const void* input);
  const Tensor& run_split(const Tensor& x, BatchSplit split);
  // How a batch size runs, measured once per batch size (cached).
  BatchSplit split_for(int64_t batch);
  Tensor probe_input(int64_t batch) const;  // random, fixed seed: what a split is timed on
  // Split or one core for each step that may run either way, timed in the whole plan.
  void settle_splits(runtime::Instance& inst, int64_t batch);
  std::string fingerprint() const;  // of the graph, for the cached choices

  Graph graph_;
  Shape sample_shape_;  // of the one input, without the batch axis
  CompileOptions options_;
  bool profiling_ = false;
  std::unique_ptr<runtime::PackedWeights> packed_;  // before instances_: they point into it
  std::map<std::pair<int64_t, int>, std::unique_ptr<runtime::Instance>> instances_;
  std::map<int64_t, BatchSplit> splits_;
  std::map<int64_t, Tensor> chunked_outputs_;  // a chunked batch's gathered output
};

}  // namespace leanai
