#include "leanai/quant/fisher.h"

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/graph/executor.h"

namespace leanai {

std::map<std::string, Tensor> fisher_diagonal(const Graph& model, const Tensor& x, const Tensor& labels, int64_t batch) {
  check(labels.dtype() == DType::i64 && labels.numel() == x.shape()[0], "fisher: labels must be i64, one per sample");
  // Gradients need the kernels in training mode, where batch-norm would update
  // its running statistics: work on a deep copy so the model is never touched.
  Graph g = model;
  for (auto& [name, p] : g.params()) p.value = p.value.clone();
  const int y = g.add_input("labels", {}, DType::i64);
  g.set_output(g.add("cross_entropy", {model.output(), y}));
  Executor ex(g);
  ex.set_training(true);
  std::map<std::string, Tensor> fisher;
  for (const auto& [name, p] : g.params())
    if (p.trainable) fisher[name] = Tensor::zeros(p.value.shape());
  const int64_t n = x.shape()[0];
  int64_t batches = 0;
  for (int64_t begin = 0; begin + batch <= n || begin == 0; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    ex.forward({x.slice0(begin, end), labels.slice0(begin, end)});
    ex.backward();
    const float rows = static_cast<float>(end - begin);
    for (auto& [name, f] : fisher) {
      const float* gr = ex.grad(name).data<float>();
      float* fd = f.data<float>();
      for (int64_t i = 0; i < f.numel(); ++i) fd[i] += rows * gr[i] * gr[i];
    }
    ++batches;
    if (end == n) break;
  }
  for (auto& [name, f] : fisher) {
    float* fd = f.data<float>();
    for (int64_t i = 0; i < f.numel(); ++i) fd[i] /= static_cast<float>(batches);
  }
  return fisher;
}

}  // namespace leanai
