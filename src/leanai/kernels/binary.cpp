// add and mul with NumPy broadcasting. Same-shape inputs take a flat,
// parallel loop; broadcast inputs use offset tables built once in prepare().
#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {


Shape broadcast_shape(const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    check(da == db || da == 1 || db == 1, "shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = std::max(da, db);
  }
  return out;
}

// For every element of `out`, the flat offset of the element of `in` it reads.
std::vector<int64_t> broadcast_offsets(const Shape& in, const Shape& out) {
  const size_t rank = out.size();
  Shape padded(rank, 1);
  std::copy(in.begin(), in.end(), padded.begin() + (rank - in.size()));
  Shape in_strides = contiguous_strides(padded);
  for (size_t i = 0; i < rank; ++i)
    if (padded[i] == 1) in_strides[i] = 0;
  std::vector<int64_t> offsets(shape_numel(out));
  Shape idx(rank, 0);
  for (int64_t flat = 0; flat < static_cast<int64_t>(offsets.size()); ++flat) {
    int64_t off = 0;
    for (size_t i = 0; i < rank; ++i) off += idx[i] * in_strides[i];
    offsets[flat] = off;
    for (int i = static_cast<int>(rank) - 1; i >= 0; --i) {
      if (++idx[i] < out[i]) break;
      idx[i] = 0;
    }
  }
  return offsets;
}

class BinaryKernel : public OpKernel {
 public:
  explicit BinaryKernel(bool is_mul) : is_mul_(is_mul) {}

  Shape prepare(const std::vector<Shape>& in, bool) override {
    Shape out = broadcast_shape(in[0], in[1]);
    same_ = in[0] == out && in[1] == out;
    if (!same_) {
      off_a_ = broadcast_offsets(in[0], out);
      off_b_ = broadcast_offsets(in[1], out);
    }
    return out;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    float* out = y.data<float>();
    const int64_t n = y.numel();
    if (same_) {
      const bool mul = is_mul_;
      for_chunks(n, [=](int64_t begin, int64_t end) {
        const float* __restrict pa = a;
        const float* __restrict pb = b;
        float* __restrict po = out;
        if (mul)
          for (int64_t i = begin; i < end; ++i) po[i] = pa[i] * pb[i];
        else
          for (int64_t i = begin; i < end; ++i) po[i] = pa[i] + pb[i];
      });
      return;
    }
#pragma omp parallel for if (n > kParallelMinElements)
    for (int64_t i = 0; i < n; ++i) {
      const float va = a[off_a_[i]], vb = b[off_b_[i]];
      out[i] = is_mul_ ? va * vb : va + vb;
    }
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* g = dy.data<float>();
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const int64_t n = dy.numel();
    for (int side = 0; side < 2; ++side) {
      if (!din[side]) continue;
      float* d = din[side]->data<float>();
      const float* other = side == 0 ? b : a;
      if (same_) {
        const bool mul = is_mul_;
        for_chunks(n, [=](int64_t begin, int64_t end) {
          const float* __restrict pg = g;
          const float* __restrict po = other;
          float* __restrict pd = d;
          if (mul)
            for (int64_t i = begin; i < end; ++i) pd[i] = pg[i] * po[i];
          else
            for (int64_t i = begin; i < end; ++i) pd[i] = pg[i];
        });
        continue;
      }
      // Broadcast: several outputs read one input element, so sum serially.
      const std::vector<int64_t>& mine = side == 0 ? off_a_ : off_b_;
      const std::vector<int64_t>& theirs = side == 0 ? off_b_ : off_a_;
      din[side]->fill(0.0f);
      for (int64_t i = 0; i < n; ++i) d[mine[i]] += is_mul_ ? g[i] * other[theirs[i]] : g[i];
    }
  }

  double flops(const std::vector<Shape>&, const Shape& out) const override { return static_cast<double>(shape_numel(out)); }

 private:
  bool is_mul_;
  bool same_ = true;
  std::vector<int64_t> off_a_, off_b_;
};

}  // namespace

void register_binary_ops() {
  register_op({"add", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<BinaryKernel>(false); }});
  register_op({"mul", 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<BinaryKernel>(true); }});
}

}  // namespace leanai
