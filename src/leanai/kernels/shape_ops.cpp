// Ops that move data without arithmetic: flatten, reshape, concat, transpose.
#include <cstring>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

// Same bytes, new shape: a copy forward and a copy backward.
class CopyReshapeKernel : public OpKernel {
 public:
  void forward(const Inputs& in, Tensor& y, RunContext&) override { std::memcpy(y.raw(), in[0]->raw(), y.nbytes()); }
  void backward(const Inputs&, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (din[0]) std::memcpy(din[0]->raw(), dy.raw(), dy.nbytes());
  }
};

// [d0, ..., d(axis-1), d(axis), ...] -> [d0 * ... * d(axis-1), rest]; axis 1 keeps the batch.
class FlattenKernel : public CopyReshapeKernel {
 public:
  explicit FlattenKernel(const Node& n) : axis_(attr_int(n, "axis", 1)) {}
  Shape prepare(const std::vector<Shape>& in, bool) override {
    const int64_t rank = static_cast<int64_t>(in[0].size());
    int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    check(axis >= 0 && axis <= rank, "flatten: axis " + std::to_string(axis_) + " is out of range for " + shape_str(in[0]));
    Shape outer(in[0].begin(), in[0].begin() + axis), inner(in[0].begin() + axis, in[0].end());
    return {shape_numel(outer), shape_numel(inner)};
  }

 private:
  int64_t axis_;
};

// Target shape as in ONNX: 0 copies the input's dimension, one -1 is inferred.
class ReshapeKernel : public CopyReshapeKernel {
 public:
  explicit ReshapeKernel(const Node& n) : target_(attr_ints(n, "shape", {})) {
    check(!target_.empty(), "reshape needs a 'shape' attribute, e.g. [0, -1]");
  }
  Shape prepare(const std::vector<Shape>& in, bool) override {
    Shape out = target_;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == 0) {
        check(i < in[0].size(), "reshape: 0 at position " + std::to_string(i) + " but the input " + shape_str(in[0]) + " has no such axis");
        out[i] = in[0][i];
      }
      if (out[i] == -1) {
        check(infer < 0, "reshape: at most one -1 in " + shape_str(target_));
        infer = static_cast<int>(i);
      } else {
        check(out[i] > 0, "reshape: bad dimension in " + shape_str(target_));
        known *= out[i];
      }
    }
    const int64_t total = shape_numel(in[0]);
    if (infer >= 0) {
      check(known > 0 && total % known == 0, "reshape: cannot reshape " + shape_str(in[0]) + " to " + shape_str(target_));
      out[infer] = total / known;
    }
    check(shape_numel(out) == total, "reshape: cannot reshape " + shape_str(in[0]) + " (" + std::to_string(total) +
                                         " values) to " + shape_str(out));
    return out;
  }

 private:
  Shape target_;
};

class ConcatKernel : public OpKernel {
 public:
  explicit ConcatKernel(const Node& n) : axis_(attr_int(n, "axis", 1)) {}
  Shape prepare(const std::vector<Shape>& in, bool) override {
    const int64_t rank = static_cast<int64_t>(in[0].size());
    axis_n_ = axis_ < 0 ? axis_ + rank : axis_;
    check(axis_n_ >= 0 && axis_n_ < rank, "concat: axis " + std::to_string(axis_) + " is out of range for " + shape_str(in[0]));
    Shape out = in[0];
    out[axis_n_] = 0;
    widths_.clear();
    for (const Shape& s : in) {
      check(s.size() == in[0].size(), "concat: inputs differ in rank: " + shape_str(in[0]) + " and " + shape_str(s));
      for (int64_t d = 0; d < rank; ++d)
        check(d == axis_n_ || s[d] == in[0][d], "concat: inputs differ outside axis " + std::to_string(axis_n_) +
                                                   ": " + shape_str(in[0]) + " and " + shape_str(s));
      const Shape inner(s.begin() + axis_n_, s.end());
      widths_.push_back(shape_numel(inner));
      out[axis_n_] += s[axis_n_];
    }
    outer_ = shape_numel(Shape(in[0].begin(), in[0].begin() + axis_n_));
    total_width_ = 0;
    for (int64_t w : widths_) total_width_ += w;
    return out;
  }
  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    float* out = y.data<float>();
    int64_t col = 0;
    for (size_t k = 0; k < in.size(); ++k) {
      const float* src = in[k]->data<float>();
      for (int64_t o = 0; o < outer_; ++o)
        std::memcpy(out + o * total_width_ + col, src + o * widths_[k], widths_[k] * sizeof(float));
      col += widths_[k];
    }
  }
  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* g = dy.data<float>();
    int64_t col = 0;
    for (size_t k = 0; k < in.size(); ++k) {
      if (din[k]) {
        float* d = din[k]->data<float>();
        for (int64_t o = 0; o < outer_; ++o)
          std::memcpy(d + o * widths_[k], g + o * total_width_ + col, widths_[k] * sizeof(float));
      }
      col += widths_[k];
    }
  }

 private:
  int64_t axis_, axis_n_ = 0, outer_ = 0, total_width_ = 0;
  std::vector<int64_t> widths_;
};

// Permutes the axes: output axis i is input axis perm[i] (attribute "perm",
// covering every axis, the batch axis included, as ONNX's Transpose). The
// backward pass applies the inverse permutation to the gradient.
class TransposeKernel : public OpKernel {
 public:
  explicit TransposeKernel(const Node& n) : perm_(attr_ints(n, "perm", {})) {
    check(!perm_.empty(), "transpose needs a 'perm' attribute, e.g. [0, 2, 1]");
    std::vector<bool> seen(perm_.size(), false);
    for (int64_t p : perm_) {
      check(p >= 0 && p < static_cast<int64_t>(perm_.size()) && !seen[p],
            "transpose: 'perm' must be a permutation of 0.." + std::to_string(perm_.size() - 1) + ", got " + shape_str(perm_));
      seen[p] = true;
    }
  }
  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in[0].size() == perm_.size(), "transpose: 'perm' " + shape_str(perm_) + " does not match the input's rank " +
                                            std::to_string(in[0].size()) + " (input " + shape_str(in[0]) + ")");
    in_shape_ = in[0];
    out_shape_.assign(perm_.size(), 0);
    for (size_t i = 0; i < perm_.size(); ++i) out_shape_[i] = in[0][perm_[i]];
    return out_shape_;
  }
  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    permute(in[0]->data<float>(), in_shape_, perm_, y.data<float>());
  }
  void backward(const Inputs&, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    if (!din[0]) return;
    Shape inverse(perm_.size());
    for (size_t i = 0; i < perm_.size(); ++i) inverse[perm_[i]] = static_cast<int64_t>(i);
    permute(dy.data<float>(), out_shape_, inverse, din[0]->data<float>());
  }

 private:
  // dst[j0, .., jr] = src[i] where i[perm[k]] = j[k]: walks dst in order and
  // steps src by the stride of the input axis each output axis reads.
  static void permute(const float* src, const Shape& src_shape, const Shape& perm, float* dst) {
    const size_t rank = perm.size();
    const Shape src_strides = contiguous_strides(src_shape);
    Shape dims(rank), steps(rank), idx(rank, 0);
    for (size_t k = 0; k < rank; ++k) {
      dims[k] = src_shape[perm[k]];
      steps[k] = src_strides[perm[k]];
    }
    const int64_t n = shape_numel(src_shape);
    int64_t off = 0;
    for (int64_t j = 0; j < n; ++j) {
      dst[j] = src[off];
      for (int k = static_cast<int>(rank) - 1; k >= 0; --k) {
        off += steps[k];
        if (++idx[k] < dims[k]) break;
        off -= steps[k] * dims[k];
        idx[k] = 0;
      }
    }
  }

  Shape perm_, in_shape_, out_shape_;
};

}  // namespace

void register_shape_ops() {
  register_op({"flatten", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<FlattenKernel>(n); }});
  register_op({"reshape", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<ReshapeKernel>(n); }});
  register_op({"transpose", 1, 1, [](int) { return true; }, [](const Node& n) { return std::make_unique<TransposeKernel>(n); }});
  register_op({"concat", 1, 64, [](int) { return true; }, [](const Node& n) { return std::make_unique<ConcatKernel>(n); }});
}

}  // namespace leanai
