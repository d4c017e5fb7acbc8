// OpKernel: the forward and backward rule of one op, instantiated per node.
// A kernel is prepared for a set of input shapes once (creating oneDNN
// primitives and scratch memory), then run many times without allocating.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/graph/graph.h"

namespace leanai {

struct RunContext {
  bool training = false;
  Rng* rng = nullptr;
};

using Inputs = std::vector<const Tensor*>;
using InputGrads = std::vector<Tensor*>;

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // Called before the first run and whenever input shapes change. Checks the
  // shapes (throwing Error with a clear message) and returns the output shape.
  virtual Shape prepare(const std::vector<Shape>& in_shapes, bool training) = 0;
  virtual void forward(const Inputs& in, Tensor& out, RunContext& ctx) = 0;
  // Writes (does not accumulate) d(loss)/d(input i) into *din[i]; din[i] is
  // null when input i needs no gradient.
  virtual void backward(const Inputs& in, const Tensor& out, const Tensor& dout, const InputGrads& din,
                        RunContext& ctx) = 0;
  // Output dtype (f32 for every op so far).
  virtual DType out_dtype() const { return DType::f32; }
  // Multiply-adds x2 of one forward pass, for `leanai info`.
  virtual double flops(const std::vector<Shape>& in_shapes, const Shape& out_shape) const { return 0; }

  // The compiled Plan calls this once after prepare, with the inputs that are
  // parameters (null for the others): they stay fixed for the kernel's life,
  // so it may pack them for faster forwards. `shared` makes a tensor once per
  // source and kind, and hands the same one to every copy of the plan (one
  // per worker and chunk size). Default: nothing to pack.
  using MakeShared =
      std::function<Tensor(const Tensor& source, const std::string& kind, const std::function<Tensor()>& make)>;
  virtual void freeze_params(const Inputs& params, const MakeShared& shared) {}
};

struct OpInfo {
  std::string name;
  int min_inputs = 1;
  int max_inputs = 1;
  // Which inputs are differentiable (e.g. cross_entropy's labels are not).
  std::function<bool(int input_index)> differentiable = [](int) { return true; };
  std::function<std::unique_ptr<OpKernel>(const Node&)> make;
  // The dtype each input must have (F32 for all but cross_entropy's labels).
  std::function<DType(int input_index)> input_dtype = [](int) { return DType::f32; };
  // When set, replaces the input_dtype check for ops that read several dtypes
  // (linear / conv2d weights stored as F32, BF16 or F16).
  std::function<bool(int input_index, DType dtype)> accepts_dtype = nullptr;
};

void register_op(OpInfo info);
// Throws Error naming the op and listing the known ones when it is unknown.
const OpInfo& find_op(const std::string& name);
bool has_op(const std::string& name);
std::vector<std::string> op_names();

// Attribute helpers: clear errors when an attribute is missing or mistyped.
int64_t attr_int(const Node& n, const std::string& key, int64_t fallback);
double attr_float(const Node& n, const std::string& key, double fallback);
std::string attr_string(const Node& n, const std::string& key, const std::string& fallback);
std::vector<int64_t> attr_ints(const Node& n, const std::string& key, std::vector<int64_t> fallback);

}  // namespace leanai
