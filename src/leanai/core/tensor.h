// Tensor: a typed view (shape, element strides, offset) onto a shared,
// 64-byte-aligned buffer. Views (reshape, slice of the first axis) share the
// buffer and cost nothing; `clone` copies.
//
//   Tensor x = Tensor::zeros({128, 784});          // f32 by default
//   float* p = x.data<float>();
//   Tensor rows = x.slice0(0, 32);                 // a view of the first 32 rows
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/dtype.h"

namespace leanai {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[128, 784]"

// An aligned block of bytes owned by one or more tensors.
class Buffer {
 public:
  explicit Buffer(size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Buffers created so far in this process: tests use it to check that a
  // steady-state training step creates none.
  static int64_t created();

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return buffer_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return numel() * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* raw() const;
  template <typename T>
  T* data() const { return static_cast<T*>(raw()); }

  // Same buffer, new shape; the tensor must be contiguous. One dim may be -1.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the first axis, as a view.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A contiguous view of `shape` starting `byte_offset` bytes into this
  // tensor's storage (an arena carved into values); must lie inside it.
  Tensor view(int64_t byte_offset, const Shape& shape, DType dtype = DType::f32) const;
  // A contiguous deep copy.
  Tensor clone() const;
  // Copies values from src (same shape and dtype) into this tensor's storage.
  void copy_from(const Tensor& src);
  void fill(float value);  // f32 only
  // f32 conversion of any dtype, and back.
  Tensor to(DType dtype) const;
  bool same_shape(const Tensor& other) const { return shape_ == other.shape_; }

 private:
  std::shared_ptr<Buffer> buffer_;
  DType dtype_ = DType::f32;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;  // in elements
};

Shape contiguous_strides(const Shape& shape);

// NumPy broadcasting of two shapes; `what` prefixes the error when they do not broadcast.
Shape broadcast_shape(const Shape& a, const Shape& b, const std::string& what = "");

}  // namespace leanai
