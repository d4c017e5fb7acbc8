// Builds the reference MLP through the installed library and runs one batch.
#include <cstdio>

#include "leanai/graph/executor.h"
#include "leanai/nn/models.h"

int main() {
  leanai::Graph g = leanai::build_preset("mlp", {1, 28, 28}, 10, 0);
  leanai::Executor ex(g);
  const leanai::Tensor& y = ex.forward({leanai::Tensor::zeros({2, 1, 28, 28})});
  std::printf("mlp: %lld parameters, output %s\n", static_cast<long long>(g.num_trainable_parameters()),
              leanai::shape_str(y.shape()).c_str());
  return y.dim(1) == 10 ? 0 : 1;
}
