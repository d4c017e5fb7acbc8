#include "leanai/core/parallel.h"
#include "leanai/graph/executor.h"

#include <chrono>

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"

namespace leanai {

// Everything that depends on the input shapes: kernels, values, gradients.
struct Executor::Instance {
  std::vector<std::unique_ptr<OpKernel>> kernels;  // null for input/param nodes
  std::vector<Tensor> values;
  std::vector<Tensor> grads;    // d(output)/d(node value), for nodes that need it
  std::vector<Tensor> scratch;  // second gradient buffer, for nodes read more than once
  std::vector<bool> grad_written;
  std::vector<Inputs> inputs;       // per node: pointers into values
  std::vector<InputGrads> din;      // per node: where backward writes, set per step
};

Executor::Executor(Graph& graph, uint64_t seed) : graph_(graph), rng_(seed) {
  flush_denormals();
  graph_.validate();
  set_input_grads(false);
  for (auto& [name, p] : graph_.params())
    if (p.trainable) param_grads_[name] = Tensor::zeros(p.value.shape());
}

Executor::~Executor() = default;

void Executor::set_input_grads(bool enabled) {
  input_grads_ = enabled;
  const auto& nodes = graph_.nodes();
  requires_grad_.assign(nodes.size(), false);
  consumers_.assign(nodes.size(), 0);
  for (const Node& n : nodes) {
    if (n.op == "param") {
      requires_grad_[n.id] = graph_.params().at(n.name).trainable;
    } else if (n.op == "input") {
      requires_grad_[n.id] = enabled;
    } else {
      const OpInfo& info = find_op(n.op);
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        consumers_[n.inputs[i]]++;
        if (requires_grad_[n.inputs[i]] && info.differentiable(static_cast<int>(i))) requires_grad_[n.id] = true;
      }
    }
  }
  instances_.clear();  // gradient buffers depend on requires_grad_
  current_ = nullptr;
}

Executor::Instance& Executor::instance_for(const std::vector<Tensor>& inputs) {
  const auto& graph_inputs = graph_.inputs();
  check(inputs.size() == graph_inputs.size(), "model expects " + std::to_string(graph_inputs.size()) +
                                                  " input(s), got " + std::to_string(inputs.size()));
  std::vector<Shape> shapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Node& in = graph_.node(graph_inputs[i]);
    Shape expected = graph_.input_sample_shape(in.id);
    const Tensor& t = inputs[i];
    check(t.defined(), "input '" + in.name + "' is empty");
    Shape sample(t.shape().begin() + (t.rank() > 0 ? 1 : 0), t.shape().end());
    check(t.rank() >= 1 && sample == expected,
          "input '" + in.name + "' has shape " + shape_str(t.shape()) + "; expected [batch" +
              (expected.empty() ? "]" : ", " + shape_str(expected).substr(1)));
    check(t.dtype() == graph_.input_dtype(in.id), "input '" + in.name + "' has dtype " + dtype_name(t.dtype()) +
                                                      "; expected " + dtype_name(graph_.input_dtype(in.id)));
    check(t.is_contiguous(), "input '" + in.name + "' must be contiguous");
    shapes.push_back(t.shape());
  }
  auto key = std::make_pair(shapes, training_);
  auto it = instances_.find(key);
  if (it != instances_.end()) return *it->second;

  // First run at these shapes: create kernels and every buffer.
  auto inst = std::make_unique<Instance>();
  const auto& nodes = graph_.nodes();
  const size_t count = nodes.size();
  inst->kernels.resize(count);
  inst->values.resize(count);
  inst->grads.resize(count);
  inst->scratch.resize(count);
  inst->grad_written.assign(count, false);
  inst->inputs.resize(count);
  inst->din.resize(count);
  size_t next_input = 0;
  for (const Node& n : nodes) {
    if (n.op == "input") {
      inst->values[n.id] = inputs[next_input++];
    } else if (n.op == "param") {
      inst->values[n.id] = graph_.params().at(n.name).value;
      if (requires_grad_[n.id]) inst->grads[n.id] = param_grads_.at(n.name);
    } else {
      std::vector<Shape> in_shapes;
      const OpInfo& info = find_op(n.op);
      for (int i : n.inputs) {
        in_shapes.push_back(inst->values[i].shape());
        inst->inputs[n.id].push_back(&inst->values[i]);
      }
      inst->kernels[n.id] = find_op(n.op).make(n);
      Shape out_shape;
      try {
        out_shape = inst->kernels[n.id]->prepare(in_shapes, training_);
      } catch (const Error& e) {
        throw Error("node " + std::to_string(n.id) + " (" + n.op + (n.name.empty() ? "" : " '" + n.name + "'") +
                    "): " + e.what());
      }
      // Shapes first (their errors say more), then the dtypes the kernel reads.
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const DType have = inst->values[n.inputs[k]].dtype(), want = info.input_dtype(static_cast<int>(k));
        const bool fits = info.accepts_dtype ? info.accepts_dtype(static_cast<int>(k), have) : have == want;
        check(fits, "node " + std::to_string(n.id) + " (" + n.op + "): input " + std::to_string(k) + " is " +
                                dtype_name(have) + ", the op reads " + dtype_name(want));
      }
      inst->values[n.id] = Tensor::empty(out_shape, inst->kernels[n.id]->out_dtype());
      inst->din[n.id].assign(n.inputs.size(), nullptr);
    }
    if (requires_grad_[n.id] && n.op != "param") inst->grads[n.id] = Tensor::empty(inst->values[n.id].shape());
    if (requires_grad_[n.id] && consumers_[n.id] > 1) inst->scratch[n.id] = Tensor::empty(inst->values[n.id].shape());
  }
  Instance& ref = *inst;
  instances_[key] = std::move(inst);
  return ref;
}

const Tensor& Executor::forward(const std::vector<Tensor>& inputs) {
  Instance& inst = instance_for(inputs);
  current_ = &inst;
  const auto& graph_inputs = graph_.inputs();
  for (size_t i = 0; i < inputs.size(); ++i) inst.values[graph_inputs[i]] = inputs[i];
  RunContext ctx{training_, &rng_};
  for (const Node& n : graph_.nodes()) {
    if (!inst.kernels[n.id]) continue;
    if (!profiling_) {
      inst.kernels[n.id]->forward(inst.inputs[n.id], inst.values[n.id], ctx);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    inst.kernels[n.id]->forward(inst.inputs[n.id], inst.values[n.id], ctx);
    times_[n.id].forward_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    times_[n.id].calls++;
  }
  return inst.values[graph_.output()];
}

void Executor::backward() {
  check(current_ != nullptr, "backward() called before forward()");
  Tensor& out = current_->values[graph_.output()];
  check(out.numel() == 1, "backward() without a gradient needs a single-element output, got " + shape_str(out.shape()));
  check(requires_grad_[graph_.output()], "backward(): the output does not depend on any trainable parameter");
  current_->grads[graph_.output()].fill(1.0f);
  run_backward(*current_);
}

void Executor::backward(const Tensor& dout) {
  check(current_ != nullptr, "backward() called before forward()");
  check(dout.shape() == current_->values[graph_.output()].shape(), "backward(dout): dout shape does not match output");
  check(requires_grad_[graph_.output()], "backward(): the output does not depend on any trainable parameter");
  current_->grads[graph_.output()].copy_from(dout);
  run_backward(*current_);
}

static void add_into(Tensor& dst, const Tensor& src) {
  float* __restrict d = dst.data<float>();
  const float* __restrict s = src.data<float>();
  for_chunks(dst.numel(), [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) d[i] += s[i];
  });
}

void Executor::run_backward(Instance& inst) {
  const auto& nodes = graph_.nodes();
  std::fill(inst.grad_written.begin(), inst.grad_written.end(), false);
  inst.grad_written[graph_.output()] = true;
  RunContext ctx{training_, &rng_};
  for (int id = static_cast<int>(nodes.size()) - 1; id >= 0; --id) {
    const Node& n = nodes[id];
    if (!inst.kernels[id] || !requires_grad_[id] || !inst.grad_written[id]) continue;
    const OpInfo& info = find_op(n.op);
    InputGrads& din = inst.din[id];
    std::vector<int> pending;
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (requires_grad_[n.inputs[i]] && info.differentiable(static_cast<int>(i))) pending.push_back(static_cast<int>(i));
    // A node may read the same value through several inputs (x @ x, concat(x, x)).
    // Each value has one scratch buffer, so when two inputs would both need it,
    // the later ones wait for another backward call of this kernel.
    while (!pending.empty()) {
      std::vector<int> accumulate, later;
      std::fill(din.begin(), din.end(), nullptr);
      for (int i : pending) {
        const int src = n.inputs[i];
        if (!inst.grad_written[src]) {
          din[i] = &inst.grads[src];
          inst.grad_written[src] = true;
        } else if (std::none_of(accumulate.begin(), accumulate.end(), [&](int j) { return n.inputs[j] == src; })) {
          din[i] = &inst.scratch[src];
          accumulate.push_back(i);
        } else {
          later.push_back(i);
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      inst.kernels[id]->backward(inst.inputs[id], inst.values[id], inst.grads[id], din, ctx);
      if (profiling_)
        times_[id].backward_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      for (int i : accumulate) add_into(inst.grads[n.inputs[i]], inst.scratch[n.inputs[i]]);
      pending = std::move(later);
    }
  }
  // A trainable parameter the output does not reach gets a zero gradient.
  for (const Node& n : nodes)
    if (n.op == "param" && requires_grad_[n.id] && !inst.grad_written[n.id]) inst.grads[n.id].fill(0.0f);
}

void Executor::set_profiling(bool enabled) {
  profiling_ = enabled;
  times_.clear();
  for (const Node& n : graph_.nodes()) times_.push_back({n.id, n.op});
}

std::vector<Executor::NodeTime> Executor::profile() const {
  std::vector<NodeTime> out;
  for (const NodeTime& t : times_)
    if (t.calls > 0) out.push_back(t);
  return out;
}

const Tensor& Executor::value(int node) const {
  check(current_ != nullptr, "value() called before forward()");
  return current_->values.at(node);
}

Tensor& Executor::grad(const std::string& param) {
  auto it = param_grads_.find(param);
  check(it != param_grads_.end(), "no gradient for '" + param + "': not a trainable parameter");
  return it->second;
}

const Tensor& Executor::input_grad(int input_index) const {
  check(current_ != nullptr && input_grads_, "input_grad() needs set_input_grads(true) and a backward pass");
  return current_->grads.at(graph_.inputs().at(input_index));
}

double Executor::flops_per_sample() {
  std::vector<Tensor> inputs;
  for (int id : graph_.inputs()) {
    Shape s = graph_.input_sample_shape(id);
    s.insert(s.begin(), 1);
    inputs.push_back(Tensor::zeros(s, graph_.input_dtype(id)));
  }
  Instance& inst = instance_for(inputs);
  double total = 0;
  for (const Node& n : graph_.nodes()) {
    if (!inst.kernels[n.id]) continue;
    std::vector<Shape> in_shapes;
    for (const Tensor* t : inst.inputs[n.id]) in_shapes.push_back(t->shape());
    total += inst.kernels[n.id]->flops(in_shapes, inst.values[n.id].shape());
  }
  return total;
}

}  // namespace leanai
