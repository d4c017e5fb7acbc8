// Dataset: samples addressed by index, gathered into batches. The loaders in
// this folder (IDX, CSV) produce an InMemoryDataset; BatchLoader shuffles and
// prefetches batches from any Dataset.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/tensor.h"

namespace leanai {

enum class Task { classification, regression };

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Shape of one sample's features, e.g. {1, 28, 28} or {13}.
  virtual Shape sample_shape() const = 0;
  virtual Task task() const = 0;
  // Classes for classification; number of regression targets otherwise.
  virtual int64_t num_outputs() const = 0;
  // Copies the samples `indices` into x ({n, sample_shape...}, f32) and
  // y ({n} i64 class ids for classification; {n, num_outputs} f32 for regression).
  // x and y are preallocated by the caller with n = indices.size() rows.
  virtual void gather(const int64_t* indices, int64_t n, Tensor& x, Tensor& y) const = 0;
};

// Features and targets held in two tensors whose first axis is the sample.
class InMemoryDataset : public Dataset {
 public:
  InMemoryDataset(Tensor features, Tensor targets, Task task, int64_t num_outputs);
  int64_t size() const override { return features_.dim(0); }
  Shape sample_shape() const override;
  Task task() const override { return task_; }
  int64_t num_outputs() const override { return num_outputs_; }
  void gather(const int64_t* indices, int64_t n, Tensor& x, Tensor& y) const override;

  const Tensor& features() const { return features_; }
  const Tensor& targets() const { return targets_; }
  // A new dataset of the given rows (copies).
  std::shared_ptr<InMemoryDataset> subset(const std::vector<int64_t>& indices) const;

 private:
  Tensor features_;  // {N, ...} f32
  Tensor targets_;   // {N} i64 or {N, k} f32
  Task task_;
  int64_t num_outputs_;
};

}  // namespace leanai
