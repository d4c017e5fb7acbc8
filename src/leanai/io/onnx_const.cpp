#include "leanai/io/onnx_const.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "leanai/core/error.h"

namespace leanai::onnx_import {
namespace {

std::string batch_error(const std::string& what) {
  return what + ": arithmetic on the batch size is not supported (only x * 1, x / 1, x + 0 and x - 0 keep it)";
}

// Flat index into `s` (right-aligned, broadcast) of output multi-index `idx`.
int64_t bcast_flat(const Shape& s, const Shape& idx) {
  const size_t off = idx.size() - s.size();
  int64_t flat = 0;
  for (size_t k = 0; k < s.size(); ++k) flat = flat * s[k] + (s[k] == 1 ? 0 : idx[off + k]);
  return flat;
}

void next_index(Shape& idx, const Shape& dims) {
  for (int k = static_cast<int>(dims.size()) - 1; k >= 0; --k) {
    if (++idx[k] < dims[k]) return;
    idx[k] = 0;
  }
}

int64_t int_op(const std::string& op, int64_t a, int64_t b, const std::string& what) {
  const bool ba = a == kBatchDim, bb = b == kBatchDim;
  if (ba || bb) {
    const int64_t other = ba ? b : a;
    check(!(ba && bb), batch_error(what));
    if ((op == "Mul" && other == 1) || (op == "Add" && other == 0) || (!bb && (op == "Div" || op == "Sub") && other == (op == "Div" ? 1 : 0)))
      return kBatchDim;
    throw Error(batch_error(what));
  }
  if (op == "Add") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  check(b != 0, what + ": integer division by zero");
  return a / b;  // truncation, as ONNX Runtime does
}

// Gathers elements of `a` into a new constant of shape `out`, element k read
// from flat index src(k).
template <typename F>
Const gather_elements(const Const& a, const Shape& out, F src) {
  const int64_t n = shape_numel(out);
  if (a.is_float) {
    std::vector<float> v(n);
    for (int64_t k = 0; k < n; ++k) v[k] = a.f[src(k)];
    return Const::floats(out, std::move(v));
  }
  std::vector<int64_t> v(n);
  for (int64_t k = 0; k < n; ++k) v[k] = a.i[src(k)];
  return Const::ints(out, std::move(v));
}

}  // namespace

Const Const::floats(Shape shape, std::vector<float> values) {
  Const c;
  c.is_float = true;
  c.shape = std::move(shape);
  c.f = std::move(values);
  return c;
}

Const Const::ints(Shape shape, std::vector<int64_t> values) {
  Const c;
  c.is_float = false;
  c.shape = std::move(shape);
  c.i = std::move(values);
  return c;
}

std::vector<int64_t> Const::as_ints(const std::string& what) const {
  if (!is_float) return i;
  std::vector<int64_t> out;
  for (float v : f) {
    check(std::isfinite(v) && v == std::trunc(v), what + ": expected integers, got " + std::to_string(v));
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

Const Const::as_floats(const std::string& what) const {
  if (is_float) return *this;
  std::vector<float> v;
  for (int64_t x : i) {
    check(x != kBatchDim, what + ": the batch size cannot be used as a number in the model's arithmetic");
    v.push_back(static_cast<float>(x));
  }
  return floats(shape, std::move(v));
}

bool Const::has_batch_dim() const {
  return !is_float && std::find(i.begin(), i.end(), kBatchDim) != i.end();
}

Tensor Const::to_tensor(const std::string& what) const {
  const Const c = as_floats(what);
  Tensor t = Tensor::empty(shape);
  if (!c.f.empty()) std::memcpy(t.raw(), c.f.data(), c.f.size() * sizeof(float));
  return t;
}

Const fold_binary(const std::string& op, const Const& a, const Const& b, const std::string& what) {
  const Shape out = broadcast_shape(a.shape, b.shape, what);
  const int64_t n = shape_numel(out);
  check(n <= kMaxFoldedElements, what + ": the folded constant " + shape_str(out) + " is too large");
  Shape idx(out.size(), 0);
  if (a.is_float || b.is_float) {
    const Const fa = a.as_floats(what), fb = b.as_floats(what);
    std::vector<float> v(n);
    for (int64_t k = 0; k < n; ++k, next_index(idx, out)) {
      const float x = fa.f[bcast_flat(a.shape, idx)], y = fb.f[bcast_flat(b.shape, idx)];
      v[k] = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
    }
    return Const::floats(out, std::move(v));
  }
  std::vector<int64_t> v(n);
  for (int64_t k = 0; k < n; ++k, next_index(idx, out))
    v[k] = int_op(op, a.i[bcast_flat(a.shape, idx)], b.i[bcast_flat(b.shape, idx)], what);
  return Const::ints(out, std::move(v));
}

Const fold_unary(const std::string& op, const Const& a, const std::string& what) {
  if (op == "Neg" && !a.is_float) {
    check(!a.has_batch_dim(), batch_error(what));
    std::vector<int64_t> v(a.i);
    for (int64_t& x : v) x = -x;
    return Const::ints(a.shape, std::move(v));
  }
  Const c = a.as_floats(what);
  for (float& x : c.f) x = op == "Neg" ? -x : std::sqrt(x);
  return c;
}

Const fold_cast(const Const& a, int onnx_dtype, const std::string& what) {
  // TensorProto.DataType: FLOAT=1, UINT8=2, INT8=3, UINT16=4, INT16=5, INT32=6,
  // INT64=7, BOOL=9, FLOAT16=10, DOUBLE=11, UINT32=12, UINT64=13.
  switch (onnx_dtype) {
    case 1:
    case 10:
    case 11:
      return a.as_floats(what);
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 12:
    case 13:
      if (!a.is_float) return a;
      {
        std::vector<int64_t> v;
        for (float x : a.f) {
          check(std::isfinite(x), what + ": cannot cast a non-finite value to an integer");
          v.push_back(static_cast<int64_t>(std::trunc(x)));
        }
        return Const::ints(a.shape, std::move(v));
      }
    case 9: {
      std::vector<int64_t> v;
      for (int64_t k = 0; k < a.numel(); ++k) v.push_back(a.at(k) != 0.0 ? 1 : 0);
      return Const::ints(a.shape, std::move(v));
    }
    default:
      throw Error(what + ": Cast to ONNX data type " + std::to_string(onnx_dtype) + " is not supported");
  }
}

int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& what) {
  check(axis >= -rank && axis < rank, what + ": axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

Const fold_gather(const Const& data, const Const& indices, int64_t axis, const std::string& what) {
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  check(rank >= 1, what + ": Gather needs data of rank >= 1");
  axis = normalize_axis(axis, rank, what);
  const std::vector<int64_t> idx = indices.as_ints(what);
  const int64_t len = data.shape[axis];
  Shape out(data.shape.begin(), data.shape.begin() + axis);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
  const int64_t inner = shape_numel(Shape(data.shape.begin() + axis + 1, data.shape.end()));
  const int64_t count = static_cast<int64_t>(idx.size());
  std::vector<int64_t> fixed(idx);
  for (int64_t& j : fixed) {
    check(j >= -len && j < len, what + ": Gather index " + std::to_string(j) + " is out of range for axis of size " + std::to_string(len));
    if (j < 0) j += len;
  }
  return gather_elements(data, out, [&](int64_t k) {
    const int64_t in_pos = k % inner, rest = k / inner;
    const int64_t which = rest % count, outer = rest / count;
    return (outer * len + fixed[which]) * inner + in_pos;
  });
}

Const fold_slice(const Const& data, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                 const std::vector<int64_t>& axes_in, const std::vector<int64_t>& steps_in, const std::string& what) {
  const int64_t rank = static_cast<int64_t>(data.shape.size());
  check(starts.size() == ends.size(), what + ": Slice starts and ends differ in length");
  std::vector<int64_t> axes = axes_in, steps = steps_in;
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  check(axes.size() == starts.size() && steps.size() == starts.size(), what + ": Slice axes/steps do not match starts");
  Shape begin(rank, 0), step(rank, 1), out = data.shape;
  for (size_t k = 0; k < starts.size(); ++k) {
    const int64_t ax = normalize_axis(axes[k], rank, what);
    const int64_t dim = data.shape[ax], st = steps[k];
    check(st != 0, what + ": Slice step must not be 0");
    // ONNX's rule; bounds are first brought into [-dim-1, dim+1] so that
    // INT64_MIN/INT64_MAX ("to the end") cannot overflow.
    int64_t s = std::clamp(starts[k], -dim - 1, dim + 1), e = std::clamp(ends[k], -dim - 1, dim + 1);
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (dim == 0) {
      out[ax] = 0;
    } else if (st > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      out[ax] = e > s ? (e - s + st - 1) / st : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      out[ax] = s > e ? (s - e - st - 1) / (-st) : 0;
    }
    begin[ax] = s;
    step[ax] = st;
  }
  const Shape strides = contiguous_strides(data.shape);
  Shape idx(rank, 0);
  std::vector<int64_t> src(shape_numel(out));
  for (size_t k = 0; k < src.size(); ++k, next_index(idx, out)) {
    int64_t flat = 0;
    for (int64_t d = 0; d < rank; ++d) flat += (begin[d] + idx[d] * step[d]) * strides[d];
    src[k] = flat;
  }
  return gather_elements(data, out, [&](int64_t k) { return src[k]; });
}

Const fold_concat(const std::vector<const Const*>& parts, int64_t axis, const std::string& what) {
  check(!parts.empty(), what + ": Concat needs inputs");
  const Shape& first = parts[0]->shape;
  const int64_t rank = static_cast<int64_t>(first.size());
  check(rank >= 1, what + ": Concat needs inputs of rank >= 1");
  axis = normalize_axis(axis, rank, what);
  bool any_float = false;
  Shape out = first;
  out[axis] = 0;
  for (const Const* p : parts) {
    check(static_cast<int64_t>(p->shape.size()) == rank, what + ": Concat inputs differ in rank");
    for (int64_t d = 0; d < rank; ++d)
      check(d == axis || p->shape[d] == first[d], what + ": Concat inputs differ outside the axis");
    out[axis] += p->shape[axis];
    any_float = any_float || p->is_float;
  }
  const int64_t outer = shape_numel(Shape(first.begin(), first.begin() + axis));
  Const result = any_float ? Const::floats(out, {}) : Const::ints(out, {});
  for (int64_t o = 0; o < outer; ++o)
    for (const Const* p : parts) {
      const int64_t width = shape_numel(Shape(p->shape.begin() + axis, p->shape.end()));
      const Const c = any_float ? p->as_floats(what) : *p;
      for (int64_t k = 0; k < width; ++k) {
        if (any_float) result.f.push_back(c.f[o * width + k]);
        else result.i.push_back(c.i[o * width + k]);
      }
    }
  return result;
}

Const fold_transpose(const Const& a, const std::vector<int64_t>& perm_in, const std::string& what) {
  const int64_t rank = static_cast<int64_t>(a.shape.size());
  std::vector<int64_t> perm = perm_in;
  if (perm.empty())
    for (int64_t k = rank - 1; k >= 0; --k) perm.push_back(k);
  check(static_cast<int64_t>(perm.size()) == rank, what + ": Transpose perm does not match the rank");
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    check(p >= 0 && p < rank && !seen[p], what + ": Transpose perm is not a permutation");
    seen[p] = true;
  }
  Shape out(rank);
  for (int64_t k = 0; k < rank; ++k) out[k] = a.shape[perm[k]];
  const Shape strides = contiguous_strides(a.shape);
  Shape idx(rank, 0);
  std::vector<int64_t> src(shape_numel(out));
  for (size_t k = 0; k < src.size(); ++k, next_index(idx, out)) {
    int64_t flat = 0;
    for (int64_t d = 0; d < rank; ++d) flat += idx[d] * strides[perm[d]];
    src[k] = flat;
  }
  return gather_elements(a, out, [&](int64_t k) { return src[k]; });
}

Shape resolve_reshape(const Shape& in, const std::vector<int64_t>& target, bool allow_zero, const std::string& what) {
  Shape out(target.begin(), target.end());
  int infer = -1;
  int64_t known = 1;
  for (size_t k = 0; k < out.size(); ++k) {
    check(out[k] != kBatchDim, what + ": Reshape of a constant to the batch size is not supported");
    if (out[k] == 0 && !allow_zero) {
      check(k < in.size(), what + ": Reshape copies axis " + std::to_string(k) + " which the input " + shape_str(in) + " lacks");
      out[k] = in[k];
    }
    if (out[k] == -1) {
      check(infer < 0, what + ": Reshape target " + shape_str(target) + " has more than one -1");
      infer = static_cast<int>(k);
    } else {
      check(out[k] >= 0, what + ": Reshape target " + shape_str(target) + " has a negative dimension");
      known *= out[k];
    }
  }
  const int64_t total = shape_numel(in);
  if (infer >= 0) {
    check(known > 0 && total % known == 0, what + ": cannot reshape " + shape_str(in) + " to " + shape_str(target));
    out[infer] = total / known;
  }
  check(shape_numel(out) == total, what + ": cannot reshape " + shape_str(in) + " to " + shape_str(target));
  return out;
}

Const fold_dequantize(const Const& x, const Const& scale, const Const* zero_point, int64_t axis, const std::string& what) {
  check(!x.is_float, what + ": the quantized input must be an integer tensor");
  const Const s = scale.as_floats(what);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  const bool per_axis = s.numel() != 1;
  int64_t ax = 0, inner = 1, channels = 1;
  if (per_axis) {
    check(rank > 0 && s.shape.size() == 1, what + ": a per-axis scale must be 1-D, got " + shape_str(s.shape));
    ax = normalize_axis(axis, rank, what);
    channels = x.shape[ax];
    check(s.numel() == channels, what + ": " + std::to_string(s.numel()) + " scales for axis " + std::to_string(ax) +
                                     " of size " + std::to_string(channels));
    for (int64_t d = ax + 1; d < rank; ++d) inner *= x.shape[d];
  }
  if (zero_point) {
    check(!zero_point->is_float && zero_point->numel() == s.numel(),
          what + ": the zero point must be an integer tensor shaped like the scale");
  }
  std::vector<float> out(x.numel());
  for (int64_t k = 0; k < x.numel(); ++k) {
    const int64_t c = per_axis ? (k / inner) % channels : 0;
    const int64_t z = zero_point ? zero_point->i[c] : 0;
    out[k] = static_cast<float>(x.i[k] - z) * s.f[c];
  }
  return Const::floats(x.shape, std::move(out));
}

Const with_shape(Const a, Shape shape) {
  a.shape = std::move(shape);
  return a;
}

}  // namespace leanai::onnx_import
