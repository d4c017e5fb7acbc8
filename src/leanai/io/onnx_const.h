// Host-side constant tensors for the ONNX importer, and the operators that
// fold on them at import time: Constant, initializers and the shape
// arithmetic PyTorch exports (Shape -> Gather -> Unsqueeze -> Concat ->
// Reshape and friends) become plain values before any leanai op is emitted.
//
// The batch size is not known at import time: Shape of a runtime value yields
// kBatchDim at axis 0, which Gather/Slice/Concat/Unsqueeze/Cast carry along
// and Reshape's converter turns back into "keep the batch axis". Arithmetic
// on it is allowed only where it leaves it unchanged (x * 1, x + 0, x / 1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "leanai/core/tensor.h"

namespace leanai::onnx_import {

// Stands for the (symbolic) batch size inside integer constants.
constexpr int64_t kBatchDim = INT64_MIN / 2;
// Folding never builds a constant larger than this (2^28 values).
constexpr int64_t kMaxFoldedElements = int64_t{1} << 28;

struct Const {
  bool is_float = true;
  Shape shape;
  std::vector<float> f;    // when is_float
  std::vector<int64_t> i;  // otherwise (ONNX int8..int64, bool)

  int64_t numel() const { return shape_numel(shape); }
  static Const floats(Shape shape, std::vector<float> values);
  static Const ints(Shape shape, std::vector<int64_t> values);
  // Element k as a double / an integer (converting; kBatchDim throws in as_floats).
  double at(int64_t k) const { return is_float ? f[k] : static_cast<double>(i[k]); }
  std::vector<int64_t> as_ints(const std::string& what) const;
  Const as_floats(const std::string& what) const;
  bool has_batch_dim() const;
  bool is_scalar_like() const { return numel() == 1; }
  Tensor to_tensor(const std::string& what) const;  // f32
};

// Each folder throws Error with a message naming `what` (the node) when the
// operands are not what the operator accepts.
Const fold_binary(const std::string& op, const Const& a, const Const& b, const std::string& what);  // Add Sub Mul Div
Const fold_unary(const std::string& op, const Const& a, const std::string& what);                   // Neg Sqrt
Const fold_cast(const Const& a, int onnx_dtype, const std::string& what);
Const fold_gather(const Const& data, const Const& indices, int64_t axis, const std::string& what);
Const fold_slice(const Const& data, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                 const std::vector<int64_t>& axes, const std::vector<int64_t>& steps, const std::string& what);
Const fold_concat(const std::vector<const Const*>& parts, int64_t axis, const std::string& what);
Const fold_transpose(const Const& a, const std::vector<int64_t>& perm, const std::string& what);
// DequantizeLinear on constants (int8 weights): (x - zero_point) * scale, per
// tensor or per slice along `axis` (scale and zero_point then 1-D).
Const fold_dequantize(const Const& x, const Const& scale, const Const* zero_point, int64_t axis, const std::string& what);
// New shape for Reshape on a constant: 0 copies (unless allow_zero), one -1 is inferred.
Shape resolve_reshape(const Shape& in, const std::vector<int64_t>& target, bool allow_zero, const std::string& what);
Const with_shape(Const a, Shape shape);

// Normalizes an axis in [-rank, rank) (or [-rank-1, rank] for insertion).
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& what);

}  // namespace leanai::onnx_import
