#include "leanai/core/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "leanai/core/error.h"

namespace leanai {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Elements of a shape to allocate, refusing sizes whose product overflows or
// exceeds what any machine here could hold (2^40 elements).
static int64_t checked_numel(const Shape& shape) {
  constexpr int64_t kMax = int64_t{1} << 40;
  int64_t n = 1;
  for (int64_t d : shape) {
    check(d >= 0, "negative dimension in shape " + shape_str(shape));
    check(d == 0 || n <= kMax / d, "shape " + shape_str(shape) + " is too large to allocate");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Shape broadcast_shape(const Shape& a, const Shape& b, const std::string& what) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < rank - a.size() ? 1 : a[k - (rank - a.size())];
    const int64_t db = k < rank - b.size() ? 1 : b[k - (rank - b.size())];
    check(da == db || da == 1 || db == 1,
          (what.empty() ? "" : what + ": ") + "shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[k] = std::max(da, db);
  }
  return out;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= shape[i];
  }
  return st;
}

namespace {
std::atomic<int64_t> buffers_created{0};
}

int64_t Buffer::created() { return buffers_created.load(); }

Buffer::Buffer(size_t bytes) : bytes_(bytes) {
  buffers_created.fetch_add(1, std::memory_order_relaxed);
  // 64-byte alignment: a cache line and one AVX-512 register.
  size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!data_) throw std::bad_alloc();
}

Buffer::~Buffer() { std::free(data_); }

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const int64_t numel = checked_numel(shape);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.buffer_ = std::make_shared<Buffer>(numel * dtype_size(dtype));
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  check(static_cast<int64_t>(values.size()) == shape_numel(shape),
        "from_vector: " + std::to_string(values.size()) + " values do not fill shape " + shape_str(shape));
  Tensor t = empty(shape);
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

bool Tensor::is_contiguous() const {
  // Without building the contiguous strides: the Plan checks every input, and
  // an allocation is a noticeable share of a one-microsecond batch-1 run.
  if (strides_.size() != shape_.size()) return false;
  int64_t expect = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

void* Tensor::raw() const {
  return static_cast<char*>(buffer_->data()) + offset_ * dtype_size(dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  check(is_contiguous(), "reshape needs a contiguous tensor");
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      check(infer < 0, "reshape: at most one dimension may be -1");
      infer = static_cast<int>(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    check(known > 0 && numel() % known == 0, "reshape: cannot infer -1 for " + shape_str(shape) + " from " + shape_str(shape_));
    s[infer] = numel() / known;
  }
  check(shape_numel(s) == numel(), "reshape: " + shape_str(shape_) + " has " + std::to_string(numel()) +
                                       " elements, " + shape_str(s) + " needs " + std::to_string(shape_numel(s)));
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  check(rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice0: range out of bounds");
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.offset_ = offset_ + begin * strides_[0];
  return t;
}

Tensor Tensor::view(int64_t byte_offset, const Shape& shape, DType dtype) const {
  check(defined() && is_contiguous(), "view: the tensor must be defined and contiguous");
  const int64_t start = offset_ * static_cast<int64_t>(dtype_size(dtype_)) + byte_offset;
  const int64_t bytes = shape_numel(shape) * static_cast<int64_t>(dtype_size(dtype));
  check(byte_offset >= 0 && start % static_cast<int64_t>(dtype_size(dtype)) == 0 &&
            start + bytes <= static_cast<int64_t>(buffer_->bytes()),
        "view: " + shape_str(shape) + " at byte " + std::to_string(byte_offset) + " does not fit the storage");
  Tensor t;
  t.buffer_ = buffer_;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.offset_ = start / static_cast<int64_t>(dtype_size(dtype));
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  check(src.shape_ == shape_ && src.dtype_ == dtype_,
        "copy_from: shape/dtype mismatch " + shape_str(src.shape_) + " vs " + shape_str(shape_));
  check(is_contiguous() && src.is_contiguous(), "copy_from needs contiguous tensors");
  if (raw() != src.raw()) std::memmove(raw(), src.raw(), nbytes());
}

void Tensor::fill(float value) {
  check(dtype_ == DType::f32 && is_contiguous(), "fill needs a contiguous f32 tensor");
  float* p = data<float>();
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
}

Tensor Tensor::to(DType target) const {
  check(is_contiguous(), "to(): needs a contiguous tensor");
  if (target == dtype_) return clone();
  // Go through f32: every dtype here converts to and from it.
  Tensor f = empty(shape_, DType::f32);
  float* fp = f.data<float>();
  const int64_t n = numel();
  switch (dtype_) {
    case DType::f32: std::memcpy(fp, raw(), n * 4); break;
    case DType::bf16: for (int64_t i = 0; i < n; ++i) fp[i] = bf16_to_f32(data<uint16_t>()[i]); break;
    case DType::f16: for (int64_t i = 0; i < n; ++i) fp[i] = f16_to_f32(data<uint16_t>()[i]); break;
    case DType::i8: for (int64_t i = 0; i < n; ++i) fp[i] = data<int8_t>()[i]; break;
    case DType::u8: for (int64_t i = 0; i < n; ++i) fp[i] = data<uint8_t>()[i]; break;
    case DType::i32: for (int64_t i = 0; i < n; ++i) fp[i] = static_cast<float>(data<int32_t>()[i]); break;
    case DType::i64: for (int64_t i = 0; i < n; ++i) fp[i] = static_cast<float>(data<int64_t>()[i]); break;
  }
  if (target == DType::f32) return f;
  Tensor out = empty(shape_, target);
  for (int64_t i = 0; i < n; ++i) {
    float v = fp[i];
    switch (target) {
      case DType::bf16: out.data<uint16_t>()[i] = f32_to_bf16(v); break;
      case DType::f16: out.data<uint16_t>()[i] = f32_to_f16(v); break;
      case DType::i8: out.data<int8_t>()[i] = static_cast<int8_t>(v); break;
      case DType::u8: out.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
      case DType::i32: out.data<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::i64: out.data<int64_t>()[i] = static_cast<int64_t>(v); break;
      case DType::f32: break;
    }
  }
  return out;
}

}  // namespace leanai
