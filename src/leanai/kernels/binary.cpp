// add, sub, mul and div with NumPy broadcasting. Same-shape inputs take a flat,
// parallel loop; broadcast inputs use offset tables built once in prepare().
#include "leanai/core/parallel.h"
#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {


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

enum class BinaryOp { add, sub, mul, div };

// y = a (op) b, and the two partial derivatives, scaled by the incoming gradient g:
//   add: g, g      sub: g, -g      mul: g b, g a      div: g / b, -g a / b^2
template <BinaryOp Op>
struct Binary {
  static float fwd(float a, float b) {
    if constexpr (Op == BinaryOp::add) return a + b;
    if constexpr (Op == BinaryOp::sub) return a - b;
    if constexpr (Op == BinaryOp::mul) return a * b;
    return a / b;
  }
  static float grad_a(float g, float, float b) {
    if constexpr (Op == BinaryOp::add || Op == BinaryOp::sub) return g;
    if constexpr (Op == BinaryOp::mul) return g * b;
    return g / b;
  }
  static float grad_b(float g, float a, float b) {
    if constexpr (Op == BinaryOp::add) return g;
    if constexpr (Op == BinaryOp::sub) return -g;
    if constexpr (Op == BinaryOp::mul) return g * a;
    return -g * a / (b * b);
  }
};

template <BinaryOp Op>
class BinaryKernel : public OpKernel {
  using F = Binary<Op>;

 public:
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
      for_chunks(n, [=](int64_t begin, int64_t end) {
        const float* __restrict pa = a;
        const float* __restrict pb = b;
        float* __restrict po = out;
        for (int64_t i = begin; i < end; ++i) po[i] = F::fwd(pa[i], pb[i]);
      });
      return;
    }
    const int64_t* oa = off_a_.data();
    const int64_t* ob = off_b_.data();
#pragma omp parallel for if (n > kParallelMinElements)
    for (int64_t i = 0; i < n; ++i) out[i] = F::fwd(a[oa[i]], b[ob[i]]);
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy, const InputGrads& din, RunContext&) override {
    const float* g = dy.data<float>();
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    const int64_t n = dy.numel();
    if (same_) {
      for (int side = 0; side < 2; ++side) {
        if (!din[side]) continue;
        float* d = din[side]->data<float>();
        for_chunks(n, [=](int64_t begin, int64_t end) {
          const float* __restrict pg = g;
          const float* __restrict pa = a;
          const float* __restrict pb = b;
          float* __restrict pd = d;
          if (side == 0)
            for (int64_t i = begin; i < end; ++i) pd[i] = F::grad_a(pg[i], pa[i], pb[i]);
          else
            for (int64_t i = begin; i < end; ++i) pd[i] = F::grad_b(pg[i], pa[i], pb[i]);
        });
      }
      return;
    }
    // Broadcast: several outputs read one input element, so sum serially.
    if (din[0]) {
      float* d = din[0]->data<float>();
      din[0]->fill(0.0f);
      for (int64_t i = 0; i < n; ++i) d[off_a_[i]] += F::grad_a(g[i], a[off_a_[i]], b[off_b_[i]]);
    }
    if (din[1]) {
      float* d = din[1]->data<float>();
      din[1]->fill(0.0f);
      for (int64_t i = 0; i < n; ++i) d[off_b_[i]] += F::grad_b(g[i], a[off_a_[i]], b[off_b_[i]]);
    }
  }

  double flops(const std::vector<Shape>&, const Shape& out) const override { return static_cast<double>(shape_numel(out)); }

 private:
  bool same_ = true;
  std::vector<int64_t> off_a_, off_b_;
};

template <BinaryOp Op>
OpInfo binary(const std::string& name) {
  return {name, 2, 2, [](int) { return true; }, [](const Node&) { return std::make_unique<BinaryKernel<Op>>(); }};
}

}  // namespace

void register_binary_ops() {
  register_op(binary<BinaryOp::add>("add"));
  register_op(binary<BinaryOp::sub>("sub"));
  register_op(binary<BinaryOp::mul>("mul"));
  register_op(binary<BinaryOp::div>("div"));
}

}  // namespace leanai
