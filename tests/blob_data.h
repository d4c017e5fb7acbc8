// A small classification task the sparsity tests share: eight Gaussian blobs
// in 16 dimensions, well separated (a 16-64-64-8 MLP reaches > 99%).
#pragma once
#include <memory>
#include <vector>

#include "leanai/core/rng.h"
#include "leanai/data/dataset.h"

namespace leanai::test_support {

inline std::shared_ptr<InMemoryDataset> blobs(int64_t n, uint64_t seed) {
  const int64_t f = 16, k = 8;
  Rng centers(1), rng(seed);
  std::vector<float> mu(k * f);
  for (float& m : mu) m = 1.5f * centers.normal();
  Tensor x = Tensor::empty({n, f});
  Tensor y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<int64_t>(rng.below(k));
    y.data<int64_t>()[i] = label;
    for (int64_t j = 0; j < f; ++j) x.data<float>()[i * f + j] = mu[label * f + j] + rng.normal();
  }
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, k);
}

}  // namespace leanai::test_support
