// Executor: runs a Graph forward and, for training, backward (reverse-mode
// autograd in reverse topological order). Kernels and buffers are created once
// per distinct set of input shapes and reused, so a training step in steady
// state allocates nothing.
//
//   Executor ex(graph);
//   ex.set_training(true);
//   const Tensor& loss = ex.forward({x, y});
//   ex.backward();                           // fills ex.grad("fc1.weight"), ...
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/rng.h"
#include "leanai/graph/graph.h"
#include "leanai/graph/op.h"

namespace leanai {

class Executor {
 public:
  explicit Executor(Graph& graph, uint64_t seed = 0);
  ~Executor();

  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }
  // Also compute gradients with respect to the graph inputs (gradient checks).
  void set_input_grads(bool enabled);

  // Runs the graph on `inputs`, given in graph.inputs() order, each with a
  // leading batch axis. Returns the output node's value (valid until the next call).
  const Tensor& forward(const std::vector<Tensor>& inputs);
  // Back-propagates d(output) = 1; the output must hold exactly one element.
  void backward();
  // Back-propagates a given d(output) of the output's shape.
  void backward(const Tensor& dout);

  const Tensor& value(int node) const;
  // The gradient buffer of a trainable parameter (allocated once, reused).
  Tensor& grad(const std::string& param);
  const Tensor& input_grad(int input_index) const;
  // Forward FLOPs per sample, computed from the kernels at batch size 1.
  double flops_per_sample();
  Graph& graph() { return graph_; }

  // Per-node time spent in forward and backward since profiling was enabled
  // (per-layer reports; `LEANAI_PROFILE=1 leanai train` prints it).
  struct NodeTime {
    int node;
    std::string op;
    double forward_ms = 0, backward_ms = 0;
    int64_t calls = 0;
  };
  void set_profiling(bool enabled);
  std::vector<NodeTime> profile() const;
  Rng& rng() { return rng_; }

 private:
  struct Instance;
  Instance& instance_for(const std::vector<Tensor>& inputs);
  void run_backward(Instance& inst);

  Graph& graph_;
  Rng rng_;
  bool training_ = false;
  bool input_grads_ = false;
  bool profiling_ = false;
  std::vector<NodeTime> times_;
  std::vector<bool> requires_grad_;
  std::vector<int> consumers_;  // how many op inputs read each node
  std::map<std::string, Tensor> param_grads_;
  std::map<std::pair<std::vector<Shape>, bool>, std::unique_ptr<Instance>> instances_;
  Instance* current_ = nullptr;
};

}  // namespace leanai
