// The inside of a compiled Plan at one batch size: values (activations with
// their oneDNN layouts and arena offsets) and the steps that run them.
// Internal to the runtime; see plan.h for the interface.
#pragma once
#include <climits>
#include <functional>
#include <string>
#include <tuple>
#include <memory>
#include <unordered_map>
#include <vector>

#include <dnnl.hpp>

#include "leanai/core/tensor.h"
#include "leanai/graph/op.h"
#include "leanai/quant/quant_params.h"
#include "leanai/runtime/plan.h"

namespace leanai::runtime {

using md = dnnl::memory::desc;

struct Value {
  Shape shape;
  md desc;
  int root = -1;          // >= 0: shares the storage of that value (a reshape, an in-place sum)
  bool external = false;  // the caller's input tensor
  int first = INT_MAX;    // first step writing it (storage roots only)
  int last = -1;          // last step reading it
  int64_t offset = 0;     // in the arena
  QuantParams quant;      // u8 / s8 values (an int8 region): what their bytes mean as f32
  int dequantized = -1;   // u8 / s8 values: their f32 copy, once a reader wanted one
  std::vector<int> quantized;  // f32 values: their u8 / s8 copies, one per params and layout readers wanted
  // A 2-D view of a 4-D value's bytes as they lie (a flatten int8 matmuls
  // absorb): column p holds feature feature_order[p] - 1. Empty: plain order.
  std::vector<int64_t> feature_order;
  dnnl::memory mem;       // bound after memory planning
  Tensor tensor;          // plain view into the arena, for kernel steps
};

struct Instance;

// Weights reordered into a kernel's layout, shared by every plan (batch size,
// worker) of one Plan that wants the same tensor in the same layout.
class PackedWeights {
 public:
  dnnl::memory get(const Tensor& w, const md& plain, const md& packed);
  // A tensor derived from a parameter once (f32 weights from 16-bit ones, 7-bit
  // int8 weights): kept here so every plan shares it and the packed copies
  // keyed by its address stay valid.
  Tensor derived(const Tensor& source, const std::string& how, const std::function<Tensor()>& make);
  int64_t bytes() const { return bytes_; }
  // Forgets the packed copies no remaining plan uses (after a plan is dropped).
  void keep_only(const std::vector<const Instance*>& users);

 private:
  struct Entry {
    const void* data;
    md desc;
    dnnl::memory memory;
  };
  std::vector<Entry> entries_;
  std::vector<std::tuple<const void*, std::string, Tensor>> derived_;
  int64_t bytes_ = 0;
};

class Step {
 public:
  virtual ~Step() = default;
  virtual void bind(Instance& inst) = 0;  // after memory planning
  virtual void run() = 0;
  // A step that can run split over the threads or on one core, to the same
  // bits (a packed batch-1 linear layer): the Plan times both forms in the
  // whole net (Plan::settle_splits), where a layer alone was timed wrong.
  virtual bool can_split() const { return false; }
  virtual bool split() const { return false; }
  virtual void set_split(bool) {}
  PlanStep info;
  std::vector<int> reads, writes;  // values
};

// A step of leanai's own code reading one value and writing one. Arena
// buffers stay put, so their addresses are kept at bind; the caller's input
// moves from run to run, so a step reading it looks at Instance::input.
class OneToOneStep : public Step {
 public:
  void bind(Instance& inst) override;

 protected:
  const void* src() const { return input_ ? *input_ : src_; }
  void* dst() const { return dst_; }
  const Shape& src_shape() const { return src_shape_; }

 private:
  const void* const* input_ = nullptr;  // &Instance::input when the step reads the caller's input
  const void* src_ = nullptr;
  void* dst_ = nullptr;
  Shape src_shape_;
};

// One oneDNN primitive with its argument map built once.
class PrimitiveStep : public Step {
 public:
  dnnl::primitive primitive;
  md scratchpad_desc;
  std::vector<std::pair<int, int>> value_args;          // DNNL_ARG_* -> value
  std::unordered_map<int, dnnl::memory> args;          // fixed ones (weights, bias) plus the bound values
  void bind(Instance& inst) override;
  void run() override;

 private:
  // args as the C API takes them, built once: the C++ execute() builds this
  // array on the heap at every call. The memories re-pointed per run (the
  // caller's input) are the same objects, so their new addresses show here.
  std::vector<dnnl_exec_arg_t> c_args_;
};

// An op without a oneDNN lowering, run through its Executor kernel on plain tensors.
class KernelStep : public Step {
 public:
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> input_values;      // -1 where the input is a parameter
  std::vector<const Tensor*> params;  // per input, when a parameter
  void bind(Instance& inst) override;
  void run() override;

 private:
  std::vector<Tensor> inputs_;
  Inputs input_ptrs_;
  Tensor output_;
  RunContext ctx_;
};

struct Instance {
  Instance() = default;
  // Steps hold pointers into it (&input, the arena), so it never moves.
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  int64_t batch = 0;
  std::vector<Value> values;
  std::vector<std::unique_ptr<Step>> steps;
  int input_value = -1;
  int output_value = -1;
  Tensor arena, scratch, output;
  const void* input = nullptr;                // the caller's input, during a run
  std::vector<dnnl::memory> input_memories;  // the input and its aliases oneDNN steps read: re-pointed at each run
  std::vector<void*> packed_weights;           // the shared packed copies this plan reads
  PlanMemory memory;  // weight_bytes: parameters read in place (biases, statistics); packed ones are shared

  int root(int v) const { return values[v].root >= 0 ? root(values[v].root) : v; }
  dnnl::memory scratchpad(const md& desc) const;
  // Plans the arena from the steps' reads and writes, then binds every step.
  void finalize();
};

// Builds the steps for `graph` (already through the inference passes) at one batch size.
std::unique_ptr<Instance> lower_graph(const Graph& graph, int64_t batch, bool tune, bool allow_winograd,
                                      PackedWeights& weights);

}  // namespace leanai::runtime
