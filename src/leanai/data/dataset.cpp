#include "leanai/data/dataset.h"

#include <cstring>

#include "leanai/core/error.h"

namespace leanai {

namespace {

// Bytes of one sample (one row along the first axis) of a contiguous tensor.
size_t row_bytes(const Tensor& t) {
  return shape_numel(Shape(t.shape().begin() + 1, t.shape().end())) * dtype_size(t.dtype());
}

void check_index(int64_t index, int64_t size) {
  check(index >= 0 && index < size, "sample index " + std::to_string(index) + " is out of range for a dataset of " +
                                        std::to_string(size) + " samples");
}

}  // namespace

InMemoryDataset::InMemoryDataset(Tensor features, Tensor targets, Task task, int64_t num_outputs)
    : features_(std::move(features)), targets_(std::move(targets)), task_(task), num_outputs_(num_outputs) {
  check(features_.defined() && targets_.defined(), "dataset: features and targets must both be given");
  check(features_.dtype() == DType::f32 && features_.rank() >= 1 && features_.is_contiguous(),
        std::string("dataset: features must be a contiguous f32 tensor {N, ...}, got ") +
            dtype_name(features_.dtype()) + " " + shape_str(features_.shape()));
  check(num_outputs_ >= 1, "dataset: num_outputs must be at least 1, got " + std::to_string(num_outputs_));
  check(targets_.is_contiguous(), "dataset: targets must be contiguous");
  const int64_t n = features_.dim(0);

  if (task_ == Task::classification) {
    check(targets_.dtype() == DType::i64 && targets_.shape() == Shape{n},
          std::string("dataset: classification targets must be i64 {") + std::to_string(n) + "} (one class id per sample), got " +
              dtype_name(targets_.dtype()) + " " + shape_str(targets_.shape()));
    const int64_t* y = targets_.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      check(y[i] >= 0 && y[i] < num_outputs_, "dataset: sample " + std::to_string(i) + " has class id " +
                                                  std::to_string(y[i]) + ", outside [0, " + std::to_string(num_outputs_) +
                                                  "); class ids must be 0..num_classes-1");
  } else {
    check(targets_.dtype() == DType::f32 && targets_.shape() == Shape{n, num_outputs_},
          "dataset: regression targets must be f32 {" + std::to_string(n) + ", " + std::to_string(num_outputs_) +
              "}, got " + dtype_name(targets_.dtype()) + " " + shape_str(targets_.shape()) +
              "; reshape a single target column to {N, 1}");
  }
}

Shape InMemoryDataset::sample_shape() const { return Shape(features_.shape().begin() + 1, features_.shape().end()); }

void InMemoryDataset::gather(const int64_t* indices, int64_t n, Tensor& x, Tensor& y) const {
  Shape x_shape = sample_shape();
  x_shape.insert(x_shape.begin(), n);
  const Shape y_shape = task_ == Task::classification ? Shape{n} : Shape{n, num_outputs_};
  check(x.defined() && x.dtype() == DType::f32 && x.shape() == x_shape && x.is_contiguous(),
        "gather: x must be a contiguous f32 tensor " + shape_str(x_shape) + ", got " + shape_str(x.shape()));
  check(y.defined() && y.dtype() == targets_.dtype() && y.shape() == y_shape && y.is_contiguous(),
        std::string("gather: y must be a contiguous ") + dtype_name(targets_.dtype()) + " tensor " + shape_str(y_shape) +
            ", got " + shape_str(y.shape()));

  const size_t x_row = row_bytes(features_), y_row = row_bytes(targets_);
  const char* xs = static_cast<const char*>(features_.raw());
  const char* ys = static_cast<const char*>(targets_.raw());
  char* xd = static_cast<char*>(x.raw());
  char* yd = static_cast<char*>(y.raw());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = indices[i];
    check_index(r, size());
    std::memcpy(xd + i * x_row, xs + r * x_row, x_row);
    std::memcpy(yd + i * y_row, ys + r * y_row, y_row);
  }
}

std::shared_ptr<InMemoryDataset> InMemoryDataset::subset(const std::vector<int64_t>& indices) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  Shape x_shape = sample_shape();
  x_shape.insert(x_shape.begin(), n);
  Shape y_shape = targets_.shape();
  y_shape[0] = n;
  Tensor x = Tensor::empty(x_shape, DType::f32);
  Tensor y = Tensor::empty(y_shape, targets_.dtype());
  gather(indices.data(), n, x, y);
  return std::make_shared<InMemoryDataset>(std::move(x), std::move(y), task_, num_outputs_);
}

}  // namespace leanai
