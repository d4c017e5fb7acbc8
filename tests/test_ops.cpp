// Op test suite, in the style of llama.cpp's tests/test-backend-ops.cpp.
//
// Every op configuration is one OpCase: a name, the op and its attributes, the
// operands (graph inputs or parameters, with shapes and how to fill them) and
// a plain, independent reference of the forward pass written here with double
// accumulation. Each case runs as two GoogleTest tests:
//
//   OpForward/<case>  the executor's forward against the reference
//                     (normalized error ||a - b|| / ||b||), in eval and/or training;
//   OpGrad/<case>     backward(R) of the projection loss L = sum(out * R)
//                     against central finite differences, for every
//                     differentiable operand (all elements of small tensors, a
//                     seeded random subset of 64 otherwise).
//
// Below the parameterized cases: behaviour that does not fit the mould
// (batch-norm running statistics, dropout in training, cross-entropy label
// checks, loss weights and soft targets, shape errors, and executor properties).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/graph.h"

using namespace leanai;

namespace {

// ---------------------------------------------------------------------------
// Case description
// ---------------------------------------------------------------------------

enum class Kind { Input, Param, Buffer };  // Buffer: non-trainable parameter
enum class Fill {
  Normal,        // N(0, 1)
  AwayFromZero,  // N(0, 1), resampled while |x| < 0.05 (ops with a kink at 0)
  Distinct,      // a shuffled grid with spacing 0.05: no near ties (max pooling)
  Positive,      // U(0.5, 1.5) (variances)
  Labels,        // i64 class indices in [0, classes)
  Wide,          // N(0, 40^2): exp() of these overflows float unless the max is subtracted
  AwayFromKinks, // N(0, 1), resampled within 0.05 of 0 and +-0.5 (clip's bounds in the cases below)
  Simplex,       // rows (last axis) of values in [0, 1) summing to 1: label distributions
  Constant,      // every element Operand::value (a gate's sparsity)
  L0LogAlpha,    // U(-5, 5), resampled within 0.1 of +-log(11), where an l0_gate's eval z clamps to 0 or 1
};

struct Operand {
  std::string name;
  Shape shape;  // full shape; for inputs the first axis is the batch
  Kind kind = Kind::Input;
  Fill fill = Fill::Normal;
  int64_t classes = 0;  // Fill::Labels
  bool grad = true;     // false: the op takes no gradient for it (loss weights, soft targets)
  float value = 0.0f;   // Fill::Constant
};

// A reference result: shape and values in double.
struct Ref {
  Shape shape;
  std::vector<double> v;
};
// Computes the op's output from the operand values (in operand order).
using RefFn = std::function<Ref(const std::vector<Tensor>& in, bool training)>;

struct OpCase {
  std::string name;
  std::string op;
  json attrs;
  std::vector<Operand> operands;
  RefFn ref;
  double fwd_tol = 1e-5;
  std::vector<bool> fwd_modes = {false, true};  // training flags the forward test runs with
  bool check_grad = true;
  bool grad_training = true;  // mode of the gradient check
  float eps = 1e-2f;          // finite-difference step
  double grad_tol = 1e-2;     // on the normalized error
  int64_t max_checked = 64;   // elements checked per tensor (a seeded random subset)
  // Rewrites the filled operands (case order) where values must relate to each
  // other, e.g. to keep every token's expert choice away from ties (moe).
  std::function<void(std::vector<Tensor>& operands, Rng& rng)> adjust = nullptr;
};

Operand in(const std::string& name, Shape s, Fill f = Fill::Normal) { return {name, std::move(s), Kind::Input, f}; }
Operand param(const std::string& name, Shape s, Fill f = Fill::Normal) { return {name, std::move(s), Kind::Param, f}; }
Operand buffer(const std::string& name, Shape s, Fill f = Fill::Normal) { return {name, std::move(s), Kind::Buffer, f}; }
Operand labels(const std::string& name, int64_t n, int64_t classes) {
  return {name, {n}, Kind::Input, Fill::Labels, classes};
}
Operand constant_buffer(const std::string& name, Shape s, float value) {
  Operand o{name, std::move(s), Kind::Buffer, Fill::Constant};
  o.value = value;
  return o;
}
// An f32 operand the op treats as data: left out of the gradient check.
Operand no_grad(Operand o) {
  o.grad = false;
  return o;
}

// ---------------------------------------------------------------------------
// Filling, graph building, comparison
// ---------------------------------------------------------------------------

Tensor make_operand(const Operand& o, Rng& rng) {
  if (o.fill == Fill::Labels) {
    Tensor t = Tensor::empty(o.shape, DType::i64);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng.below(o.classes));
    return t;
  }
  Tensor t = Tensor::empty(o.shape);
  float* p = t.data<float>();
  const int64_t n = t.numel();
  switch (o.fill) {
    case Fill::Normal:
      for (int64_t i = 0; i < n; ++i) p[i] = rng.normal();
      break;
    case Fill::AwayFromZero:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        do v = rng.normal(); while (std::fabs(v) < 0.05f);
        p[i] = v;
      }
      break;
    case Fill::Distinct: {
      std::vector<int64_t> perm(n);
      std::iota(perm.begin(), perm.end(), 0);
      for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
      for (int64_t i = 0; i < n; ++i) p[i] = (static_cast<float>(perm[i]) - n / 2.0f) * 0.05f;
      break;
    }
    case Fill::AwayFromKinks:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        do v = rng.normal(); while (std::fabs(v) < 0.05f || std::fabs(std::fabs(v) - 0.5f) < 0.05f);
        p[i] = v;
      }
      break;
    case Fill::Positive:
      for (int64_t i = 0; i < n; ++i) p[i] = rng.uniform(0.5f, 1.5f);
      break;
    case Fill::Wide:
      for (int64_t i = 0; i < n; ++i) p[i] = 40.0f * rng.normal();
      break;
    case Fill::Simplex: {
      const int64_t len = o.shape.back();
      for (int64_t r = 0; r < n / len; ++r) {
        double sum = 0;
        for (int64_t i = 0; i < len; ++i) sum += p[r * len + i] = rng.uniform();
        for (int64_t i = 0; i < len; ++i) p[r * len + i] = static_cast<float>(p[r * len + i] / sum);
      }
      break;
    }
    case Fill::Constant:
      for (int64_t i = 0; i < n; ++i) p[i] = o.value;
      break;
    case Fill::L0LogAlpha:
      for (int64_t i = 0; i < n; ++i) {
        float v;
        do v = rng.uniform(-5.0f, 5.0f); while (std::fabs(std::fabs(v) - std::log(11.0f)) < 0.1f);
        p[i] = v;
      }
      break;
    case Fill::Labels:
      break;
  }
  return t;
}

// A graph holding one op node over the case's operands. The operand tensors
// share storage with the graph's inputs/parameters, so writing into them
// perturbs what the executor sees.
struct Built {
  std::unique_ptr<Graph> graph;
  std::vector<Tensor> operands;  // case order
  std::vector<int> input_index;  // per operand: index into inputs, or -1
  std::vector<Tensor> inputs;    // graph.inputs() order
};

Built build(const OpCase& c, uint64_t seed) {
  Built b;
  b.graph = std::make_unique<Graph>();
  Rng rng(seed);
  std::vector<int> ids;
  for (const Operand& o : c.operands) {
    Tensor t = make_operand(o, rng);
    b.operands.push_back(t);
    if (o.kind == Kind::Input) {
      Shape sample(o.shape.begin() + 1, o.shape.end());
      ids.push_back(b.graph->add_input(o.name, sample, t.dtype()));
      b.input_index.push_back(static_cast<int>(b.inputs.size()));
      b.inputs.push_back(t);
    } else {
      ids.push_back(b.graph->add_param(o.name, t, o.kind == Kind::Param));
      b.input_index.push_back(-1);
    }
  }
  if (c.adjust) c.adjust(b.operands, rng);
  b.graph->set_output(b.graph->add(c.op, ids, c.attrs));
  return b;
}

std::vector<Tensor> clone_all(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(t.clone());
  return out;
}

double norm_error(const float* a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

double norm_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

Tensor random_tensor(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = rng.normal();
  return t;
}

// Indices of the elements to check: all of a small tensor, else `max` at random.
std::vector<int64_t> check_indices(int64_t n, uint64_t seed, int64_t max) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (n <= max) return idx;
  Rng rng(seed);
  for (int64_t i = 0; i < max; ++i) std::swap(idx[i], idx[i + rng.below(n - i)]);
  idx.resize(max);
  std::sort(idx.begin(), idx.end());
  return idx;
}

// ---------------------------------------------------------------------------
// Reference helpers
// ---------------------------------------------------------------------------

const float* F(const Tensor& t) { return t.data<float>(); }

Shape broadcast(const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    out[i] = std::max(da, db);
  }
  return out;
}

// Flat index into `s` (right-aligned, broadcast) of the multi-index `idx` of the output.
int64_t bcast_flat(const Shape& s, const Shape& idx) {
  const size_t off = idx.size() - s.size();
  int64_t flat = 0;
  for (size_t i = 0; i < s.size(); ++i) flat = flat * s[i] + (s[i] == 1 ? 0 : idx[off + i]);
  return flat;
}

Shape unravel(int64_t flat, const Shape& s) {
  Shape idx(s.size());
  for (int i = static_cast<int>(s.size()) - 1; i >= 0; --i) {
    idx[i] = flat % s[i];
    flat /= s[i];
  }
  return idx;
}

RefFn ref_binary(bool is_mul) {
  return [is_mul](const std::vector<Tensor>& in, bool) {
    Ref r;
    r.shape = broadcast(in[0].shape(), in[1].shape());
    const int64_t n = shape_numel(r.shape);
    for (int64_t i = 0; i < n; ++i) {
      Shape idx = unravel(i, r.shape);
      double a = F(in[0])[bcast_flat(in[0].shape(), idx)];
      double b = F(in[1])[bcast_flat(in[1].shape(), idx)];
      r.v.push_back(is_mul ? a * b : a + b);
    }
    return r;
  };
}

RefFn ref_binary_fn(std::function<double(double, double)> f) {
  return [f](const std::vector<Tensor>& in, bool) {
    Ref r;
    r.shape = broadcast(in[0].shape(), in[1].shape());
    const int64_t n = shape_numel(r.shape);
    for (int64_t i = 0; i < n; ++i) {
      Shape idx = unravel(i, r.shape);
      r.v.push_back(f(F(in[0])[bcast_flat(in[0].shape(), idx)], F(in[1])[bcast_flat(in[1].shape(), idx)]));
    }
    return r;
  };
}

// out[j] = in[i] with i[perm[k]] = j[k], by unravelling every output index.
RefFn ref_transpose(Shape perm) {
  return [perm](const std::vector<Tensor>& in, bool) {
    const Shape& s = in[0].shape();
    Ref r{Shape(perm.size()), {}};
    for (size_t k = 0; k < perm.size(); ++k) r.shape[k] = s[perm[k]];
    for (int64_t j = 0; j < in[0].numel(); ++j) {
      const Shape out_idx = unravel(j, r.shape);
      Shape in_idx(s.size());
      for (size_t k = 0; k < perm.size(); ++k) in_idx[perm[k]] = out_idx[k];
      int64_t flat = 0;
      for (size_t d = 0; d < s.size(); ++d) flat = flat * s[d] + in_idx[d];
      r.v.push_back(F(in[0])[flat]);
    }
    return r;
  };
}

RefFn ref_unary(std::function<double(double)> f) {
  return [f](const std::vector<Tensor>& in, bool) {
    Ref r{in[0].shape(), {}};
    for (int64_t i = 0; i < in[0].numel(); ++i) r.v.push_back(f(F(in[0])[i]));
    return r;
  };
}

Ref ref_linear(const std::vector<Tensor>& in, bool) {
  const Tensor &x = in[0], &w = in[1];
  const int64_t O = w.dim(0), I = w.dim(1), rows = x.numel() / I;
  Ref r{x.shape(), {}};
  r.shape.back() = O;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t o = 0; o < O; ++o) {
      double acc = in.size() == 3 ? F(in[2])[o] : 0.0;
      for (int64_t i = 0; i < I; ++i) acc += static_cast<double>(F(x)[row * I + i]) * F(w)[o * I + i];
      r.v.push_back(acc);
    }
  return r;
}

Ref ref_matmul(const std::vector<Tensor>& in, bool) {
  const Tensor &a = in[0], &b = in[1];
  const int64_t M = a.dim(-2), K = a.dim(-1), N = b.dim(-1), batch = a.numel() / (M * K);
  const bool shared = b.rank() == 2;
  Ref r{a.shape(), {}};
  r.shape.back() = N;
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += static_cast<double>(F(a)[(bi * M + m) * K + k]) * F(b)[(shared ? 0 : bi * K * N) + k * N + n];
        r.v.push_back(acc);
      }
  return r;
}

struct ConvCfg {
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

RefFn ref_conv(ConvCfg c) {
  return [c](const std::vector<Tensor>& in, bool) {
    const Tensor &x = in[0], &w = in[1];
    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t OC = w.dim(0), CG = w.dim(1), KH = w.dim(2), KW = w.dim(3);
    const int64_t OH = (H + 2 * c.ph - (c.dh * (KH - 1) + 1)) / c.sh + 1;
    const int64_t OW = (W + 2 * c.pw - (c.dw * (KW - 1) + 1)) / c.sw + 1;
    const int64_t ocg = OC / c.groups;
    Ref r{{N, OC, OH, OW}, {}};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oc = 0; oc < OC; ++oc)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t g = oc / ocg;
            double acc = in.size() == 3 ? F(in[2])[oc] : 0.0;
            for (int64_t ic = 0; ic < CG; ++ic) {
              const int64_t ch = g * CG + ic;
              for (int64_t kh = 0; kh < KH; ++kh)
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t ih = oh * c.sh - c.ph + kh * c.dh, iw = ow * c.sw - c.pw + kw * c.dw;
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  acc += static_cast<double>(F(x)[((n * C + ch) * H + ih) * W + iw]) *
                         F(w)[((oc * CG + ic) * KH + kh) * KW + kw];
                }
            }
            r.v.push_back(acc);
          }
    (void)C;
    return r;
  };
}

struct PoolCfg {
  int64_t kh = 2, kw = 2, sh = 2, sw = 2, ph = 0, pw = 0;
  bool is_max = true;
  bool include_pad = true;
};

RefFn ref_pool(PoolCfg c) {
  return [c](const std::vector<Tensor>& in, bool) {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t OH = (H + 2 * c.ph - c.kh) / c.sh + 1, OW = (W + 2 * c.pw - c.kw) / c.sw + 1;
    Ref r{{N, C, OH, OW}, {}};
    for (int64_t p = 0; p < N * C; ++p)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double mx = -INFINITY, sum = 0;
          int64_t count = 0;
          for (int64_t i = 0; i < c.kh; ++i)
            for (int64_t j = 0; j < c.kw; ++j) {
              const int64_t ih = oh * c.sh - c.ph + i, iw = ow * c.sw - c.pw + j;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const double v = F(x)[(p * H + ih) * W + iw];
              mx = std::max(mx, v);
              sum += v;
              ++count;
            }
          r.v.push_back(c.is_max ? mx : sum / static_cast<double>(c.include_pad ? c.kh * c.kw : count));
        }
    return r;
  };
}

Ref ref_global_avgpool(const std::vector<Tensor>& in, bool) {
  const Tensor& x = in[0];
  const int64_t planes = x.dim(0) * x.dim(1), area = x.dim(2) * x.dim(3);
  Ref r{{x.dim(0), x.dim(1), 1, 1}, {}};
  for (int64_t p = 0; p < planes; ++p) {
    double s = 0;
    for (int64_t i = 0; i < area; ++i) s += F(x)[p * area + i];
    r.v.push_back(s / area);
  }
  return r;
}

// Batch statistics over N (and H, W) in training; running statistics in eval.
RefFn ref_batchnorm(double eps) {
  return [eps](const std::vector<Tensor>& in, bool training) {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), C = x.dim(1), HW = x.rank() == 4 ? x.dim(2) * x.dim(3) : 1;
    std::vector<double> mean(C), var(C);
    for (int64_t c = 0; c < C; ++c) {
      if (training) {
        double s = 0, sq = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < HW; ++i) s += F(x)[(n * C + c) * HW + i];
        mean[c] = s / (N * HW);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < HW; ++i) {
            const double d = F(x)[(n * C + c) * HW + i] - mean[c];
            sq += d * d;
          }
        var[c] = sq / (N * HW);
      } else {
        mean[c] = F(in[3])[c];
        var[c] = F(in[4])[c];
      }
    }
    Ref r{x.shape(), std::vector<double>(x.numel())};
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t j = (n * C + c) * HW + i;
          r.v[j] = (F(x)[j] - mean[c]) / std::sqrt(var[c] + eps) * F(in[1])[c] + F(in[2])[c];
        }
    return r;
  };
}

Ref ref_layernorm(const std::vector<Tensor>& in, bool) {
  const Tensor& x = in[0];
  const int64_t W = x.dim(-1), rows = x.numel() / W;
  Ref r{x.shape(), {}};
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = F(x) + row * W;
    double m = 0, v = 0;
    for (int64_t i = 0; i < W; ++i) m += xr[i];
    m /= W;
    for (int64_t i = 0; i < W; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= W;
    for (int64_t i = 0; i < W; ++i) r.v.push_back((xr[i] - m) / std::sqrt(v + 1e-5) * F(in[1])[i] + F(in[2])[i]);
  }
  return r;
}

RefFn ref_copy_to(std::function<Shape(const Shape&)> shape_of) {
  return [shape_of](const std::vector<Tensor>& in, bool) {
    Ref r{shape_of(in[0].shape()), {}};
    for (int64_t i = 0; i < in[0].numel(); ++i) r.v.push_back(F(in[0])[i]);
    return r;
  };
}

RefFn ref_concat(int64_t axis) {
  return [axis](const std::vector<Tensor>& in, bool) {
    Shape out = in[0].shape();
    const int64_t ax = axis < 0 ? axis + static_cast<int64_t>(out.size()) : axis;
    out[ax] = 0;
    for (const Tensor& t : in) out[ax] += t.dim(static_cast<int>(ax));
    Ref r{out, {}};
    const int64_t n = shape_numel(out);
    for (int64_t i = 0; i < n; ++i) {
      Shape idx = unravel(i, out);
      size_t k = 0;
      while (idx[ax] >= in[k].dim(static_cast<int>(ax))) idx[ax] -= in[k++].dim(static_cast<int>(ax));
      int64_t flat = 0;
      for (size_t d = 0; d < idx.size(); ++d) flat = flat * in[k].shape()[d] + idx[d];
      r.v.push_back(F(in[k])[flat]);
    }
    return r;
  };
}

RefFn ref_softmax(int64_t axis, bool log) {
  return [axis, log](const std::vector<Tensor>& in, bool) {
    const Shape& s = in[0].shape();
    const int64_t ax = axis < 0 ? axis + static_cast<int64_t>(s.size()) : axis;
    const int64_t len = s[ax];
    int64_t inner = 1;
    for (size_t d = ax + 1; d < s.size(); ++d) inner *= s[d];
    const int64_t outer = in[0].numel() / (len * inner);
    Ref r{s, std::vector<double>(in[0].numel())};
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto at = [&](int64_t k) { return o * len * inner + k * inner + i; };
        double sum = 0;
        for (int64_t k = 0; k < len; ++k) sum += std::exp(static_cast<double>(F(in[0])[at(k)]));
        for (int64_t k = 0; k < len; ++k) {
          const double x = F(in[0])[at(k)];
          r.v[at(k)] = log ? x - std::log(sum) : std::exp(x) / sum;
        }
      }
    return r;
  };
}

// in[2], when present, weighs each row; the sum is still divided by N.
RefFn ref_cross_entropy(double smoothing) {
  return [smoothing](const std::vector<Tensor>& in, bool) {
    const int64_t N = in[0].dim(0), C = in[0].dim(1);
    double total = 0;
    for (int64_t n = 0; n < N; ++n) {
      const float* x = F(in[0]) + n * C;
      double sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(x[c]));
      const int64_t label = in[1].data<int64_t>()[n];
      const double w = in.size() > 2 ? F(in[2])[n] : 1.0;
      for (int64_t c = 0; c < C; ++c) {
        const double target = (c == label ? 1.0 - smoothing : 0.0) + smoothing / C;
        total -= w * target * (x[c] - std::log(sum));
      }
    }
    return Ref{{}, {total / N}};
  };
}

// mean_n w_n * -sum_c t_nc log softmax(x_n)_c, with log-sum-exp shifted by the row maximum.
Ref ref_soft_cross_entropy(const std::vector<Tensor>& in, bool) {
  const int64_t N = in[0].dim(0), C = in[0].dim(1);
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* x = F(in[0]) + n * C;
    const double mx = *std::max_element(x, x + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(x[c] - mx);
    const double lse = mx + std::log(sum);
    const double w = in.size() > 2 ? F(in[2])[n] : 1.0;
    for (int64_t c = 0; c < C; ++c) total -= w * F(in[1])[n * C + c] * (x[c] - lse);
  }
  return Ref{{}, {total / N}};
}

Ref ref_mse(const std::vector<Tensor>& in, bool) {
  double s = 0;
  for (int64_t i = 0; i < in[0].numel(); ++i) {
    const double d = static_cast<double>(F(in[0])[i]) - F(in[1])[i];
    s += d * d;
  }
  return Ref{{}, {s / in[0].numel()}};
}

// neuron_gate: channel c is off when at least k = floor(s * C) channels come
// before it in (gate value, index) order; computed by counting, O(C^2), apart
// from the kernel's selection. The cases use sparsities exact in binary.
std::vector<bool> ref_gate_on(const Tensor& gates, double s) {
  const int64_t C = gates.numel();
  const auto k = static_cast<int64_t>(std::floor(s * C));
  std::vector<bool> on(C);
  for (int64_t c = 0; c < C; ++c) {
    int64_t before = 0;
    for (int64_t j = 0; j < C; ++j) before += F(gates)[j] < F(gates)[c] || (F(gates)[j] == F(gates)[c] && j < c);
    on[c] = before >= k;
  }
  return on;
}

Ref ref_neuron_gate(const std::vector<Tensor>& in, bool) {
  const Tensor& x = in[0];
  const int64_t C = x.dim(1), inner = x.numel() / (x.dim(0) * C);
  const std::vector<bool> on = ref_gate_on(in[1], F(in[2])[0]);
  Ref r{x.shape(), {}};
  for (int64_t i = 0; i < x.numel(); ++i) r.v.push_back(on[(i / inner) % C] ? F(x)[i] : 0.0);
  return r;
}


// moe, written plainly in double: per token, the router's affinities, the
// top_k experts by s + bias, their gates, then the experts and the shared MLP.
struct MoeCfg {
  int64_t top_k = 2;
  bool sigmoid = true;
  double capacity_factor = 0;  // 0: no limit
};

struct MoeTokenRoute {
  std::vector<double> s;        // affinities [E]
  std::vector<double> score;    // s + bias [E]
  std::vector<int64_t> chosen;  // top_k experts, best first
  std::vector<double> gate;     // per chosen
};

MoeTokenRoute moe_route_ref(const float* x, const Tensor& router, const Tensor& bias, const MoeCfg& c) {
  const int64_t E = router.dim(0), D = router.dim(1);
  MoeTokenRoute r{std::vector<double>(E), std::vector<double>(E), {}, {}};
  std::vector<double> z(E);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t d = 0; d < D; ++d) z[e] += static_cast<double>(x[d]) * F(router)[e * D + d];
  const double mx = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += std::exp(z[e] - mx);
  for (int64_t e = 0; e < E; ++e) {
    r.s[e] = c.sigmoid ? 1 / (1 + std::exp(-z[e])) : std::exp(z[e] - mx) / sum;
    r.score[e] = r.s[e] + F(bias)[e];
  }
  std::vector<int64_t> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return r.score[a] > r.score[b]; });
  r.chosen.assign(order.begin(), order.begin() + c.top_k);
  double chosen_sum = 0;
  for (int64_t e : r.chosen) chosen_sum += r.s[e];
  for (int64_t e : r.chosen) r.gate.push_back(c.sigmoid ? r.s[e] / chosen_sum : r.s[e]);
  return r;
}

// relu(w1 x + b1) then w2 h + b2, for w1 [H, D], w2 [D, H] at the given offsets.
std::vector<double> mlp_ref(const float* x, const float* w1, const float* b1, const float* w2, const float* b2, int64_t D,
                            int64_t H) {
  std::vector<double> h(H), out(D);
  for (int64_t j = 0; j < H; ++j) {
    double a = b1[j];
    for (int64_t d = 0; d < D; ++d) a += static_cast<double>(w1[j * D + d]) * x[d];
    h[j] = a > 0 ? a : 0;
  }
  for (int64_t d = 0; d < D; ++d) {
    double a = b2[d];
    for (int64_t j = 0; j < H; ++j) a += w2[d * H + j] * h[j];
    out[d] = a;
  }
  return out;
}

RefFn ref_moe(MoeCfg c) {
  return [c](const std::vector<Tensor>& in, bool) {
    const bool shared = in.size() == 13;
    const Tensor &x = in[0], &router = in[1], &w1 = in[2], &b1 = in[3], &w2 = in[4], &b2 = in[5];
    const Tensor& bias = in[shared ? 10 : 6];
    const int64_t N = x.dim(0), D = x.dim(1), E = router.dim(0), H = w1.dim(1);
    std::vector<MoeTokenRoute> routes;
    for (int64_t t = 0; t < N; ++t) routes.push_back(moe_route_ref(F(x) + t * D, router, bias, c));
    // Capacity: per expert, the tokens with the highest affinity (ties: the earlier token).
    int64_t cap = N;
    if (c.capacity_factor > 0) cap = std::min<int64_t>(N, static_cast<int64_t>(std::ceil(c.capacity_factor * N * c.top_k / E)));
    std::vector<std::vector<bool>> kept(N, std::vector<bool>(c.top_k, true));
    for (int64_t e = 0; e < E; ++e) {
      std::vector<std::pair<int64_t, int64_t>> users;  // (token, slot)
      for (int64_t t = 0; t < N; ++t)
        for (int64_t j = 0; j < c.top_k; ++j)
          if (routes[t].chosen[j] == e) users.push_back({t, j});
      std::stable_sort(users.begin(), users.end(), [&](auto a, auto b) { return routes[a.first].s[e] > routes[b.first].s[e]; });
      for (size_t i = cap; i < users.size(); ++i) kept[users[i].first][users[i].second] = false;
    }
    Ref r{{N, D}, std::vector<double>(N * D, 0.0)};
    for (int64_t t = 0; t < N; ++t) {
      const float* xt = F(x) + t * D;
      if (shared) {
        const int64_t SH = in[6].dim(0);
        std::vector<double> o = mlp_ref(xt, F(in[6]), F(in[7]), F(in[8]), F(in[9]), D, SH);
        for (int64_t d = 0; d < D; ++d) r.v[t * D + d] += o[d];
      }
      for (int64_t j = 0; j < c.top_k; ++j) {
        if (!kept[t][j]) continue;
        const int64_t e = routes[t].chosen[j];
        std::vector<double> o = mlp_ref(xt, F(w1) + e * H * D, F(b1) + e * H, F(w2) + e * D * H, F(b2) + e * D, D, H);
        for (int64_t d = 0; d < D; ++d) r.v[t * D + d] += routes[t].gate[j] * o[d];
      }
    }
    return r;
  };
}

// l0_gate in eval mode with the default beta, gamma, zeta: z_c =
// clamp(sigmoid(log_alpha_c) * (1.1 + 0.1) - 0.1, 0, 1), y = x * z.
Ref ref_l0_gate_eval(const std::vector<Tensor>& in, bool) {
  const Tensor& x = in[0];
  const int64_t C = x.dim(1), inner = x.numel() / (x.dim(0) * C);
  Ref r{x.shape(), {}};
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double a = F(in[1])[(i / inner) % C];
    const double z = std::min(1.0, std::max(0.0, 1.2 / (1.0 + std::exp(-a)) - 0.1));
    r.v.push_back(F(x)[i] * z);
  }
  return r;
}

// block_gated_linear: scores = x gw^T; per row the top_k blocks (sorted by
// score, then index), g = top_k * softmax over them, y = g * (x W_b^T + b_b)
// on kept blocks, 0 elsewhere. Throws when the k-th and (k+1)-th scores of
// a row are within 0.02: a finite difference (eps 1e-3 times an x or gate
// weight of at most about 4) could flip the choice there, so the case's data
// would have to change (a seed or a shape).
RefFn ref_block_gated_linear(int64_t blocks, int64_t top_k) {
  return [blocks, top_k](const std::vector<Tensor>& in, bool) {
    const Tensor &x = in[0], &w = in[1], &b = in[2], &gw = in[3];
    const int64_t N = x.dim(0), D = x.dim(1), C = w.dim(0), S = C / blocks;
    Ref r{{N, C}, std::vector<double>(N * C, 0.0)};
    for (int64_t n = 0; n < N; ++n) {
      std::vector<std::pair<double, int64_t>> scores;
      for (int64_t k = 0; k < blocks; ++k) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(F(x)[n * D + d]) * F(gw)[k * D + d];
        scores.push_back({s, k});
      }
      std::sort(scores.begin(), scores.end(), [](auto& p, auto& q) { return p.first > q.first || (p.first == q.first && p.second < q.second); });
      if (top_k < blocks && scores[top_k - 1].first - scores[top_k].first < 0.02)
        throw std::runtime_error("block_gated_linear case: row " + std::to_string(n) + " has near-tied gate scores");
      double sum = 0;
      for (int64_t j = 0; j < top_k; ++j) sum += std::exp(scores[j].first - scores[0].first);
      for (int64_t j = 0; j < top_k; ++j) {
        const double g = top_k * std::exp(scores[j].first - scores[0].first) / sum;
        const int64_t blk = scores[j].second;
        for (int64_t o = blk * S; o < (blk + 1) * S; ++o) {
          double acc = F(b)[o];
          for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(F(x)[n * D + d]) * F(w)[o * D + d];
          r.v[n * C + o] = g * acc;
        }
      }
    }
    return r;
  };
}

// Makes a moe case's operands safe for finite differences (step 1e-2): the
// router scaled by router_scale and the routing bias by 0.1 (so routing
// depends on the token), then token rows of x resampled until the k-th best
// s + bias beats the next by 0.05, every hidden unit a token uses (chosen
// experts and shared) is at least 0.1 from ReLU's kink, and, with a capacity,
// the last kept and first dropped token of a full expert differ in affinity
// by 0.05. A step then moves no choice, no drop and no ReLU.
std::function<void(std::vector<Tensor>&, Rng&)> moe_separate(MoeCfg c, float router_scale) {
  return [c, router_scale](std::vector<Tensor>& op, Rng& rng) {
    const bool shared = op.size() == 13;
    Tensor &x = op[0], &router = op[1], &bias = op[shared ? 10 : 6];
    for (int64_t i = 0; i < router.numel(); ++i) router.data<float>()[i] *= router_scale;
    for (int64_t i = 0; i < bias.numel(); ++i) bias.data<float>()[i] *= 0.1f;
    const int64_t N = x.dim(0), D = x.dim(1), E = router.dim(0), H = op[2].dim(1);
    auto far_from_kinks = [&](const float* xt, const float* w1, const float* b1, int64_t units) {
      for (int64_t j = 0; j < units; ++j) {
        double a = b1[j];
        for (int64_t d = 0; d < D; ++d) a += static_cast<double>(w1[j * D + d]) * xt[d];
        if (std::fabs(a) < 0.1) return false;
      }
      return true;
    };
    auto row_ok = [&](const float* xt) {
      const MoeTokenRoute r = moe_route_ref(xt, router, bias, c);
      std::vector<double> sorted = r.score;
      std::sort(sorted.rbegin(), sorted.rend());
      bool ok = c.top_k == E || sorted[c.top_k - 1] - sorted[c.top_k] >= 0.05;
      for (int64_t e : r.chosen) ok = ok && far_from_kinks(xt, F(op[2]) + e * H * D, F(op[3]) + e * H, H);
      return shared ? ok && far_from_kinks(xt, F(op[6]), F(op[7]), op[6].dim(0)) : ok;
    };
    auto resample_until_ok = [&](int64_t t, bool force) {
      float* xt = x.data<float>() + t * D;
      for (int attempt = 0; force || !row_ok(xt); ++attempt) {
        if (attempt > 100000) throw Error("moe_separate: no well-separated row found for token " + std::to_string(t));
        for (int64_t d = 0; d < D; ++d) xt[d] = rng.normal();
        force = false;
      }
    };
    for (int64_t t = 0; t < N; ++t) resample_until_ok(t, false);
    if (c.capacity_factor <= 0) return;
    const size_t cap = static_cast<size_t>(std::ceil(c.capacity_factor * N * c.top_k / E));
    for (int round = 0;; ++round) {
      if (round > 10000) throw Error("moe_separate: capacity boundaries stay too close");
      std::vector<MoeTokenRoute> routes;
      for (int64_t t = 0; t < N; ++t) routes.push_back(moe_route_ref(x.data<float>() + t * D, router, bias, c));
      int64_t bad = -1;
      for (int64_t e = 0; e < E && bad < 0; ++e) {
        std::vector<int64_t> users;
        for (int64_t t = 0; t < N; ++t)
          if (std::find(routes[t].chosen.begin(), routes[t].chosen.end(), e) != routes[t].chosen.end()) users.push_back(t);
        if (users.size() <= cap) continue;
        std::stable_sort(users.begin(), users.end(), [&](int64_t a, int64_t b) { return routes[a].s[e] > routes[b].s[e]; });
        if (routes[users[cap - 1]].s[e] - routes[users[cap]].s[e] < 0.05) bad = users[cap];
      }
      if (bad < 0) return;
      resample_until_ok(bad, true);
    }
  };
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

OpCase conv_case(const std::string& name, Shape x, Shape w, bool bias, ConvCfg c, json attrs) {
  OpCase k{name, "conv2d", attrs, {in("x", x), param("weight", w)}, ref_conv(c)};
  if (bias) k.operands.push_back(param("bias", {w[0]}));
  return k;
}

OpCase pool_case(const std::string& name, Shape x, PoolCfg c, json attrs) {
  OpCase k{name, c.is_max ? "maxpool2d" : "avgpool2d", attrs,
           {in("x", x, c.is_max ? Fill::Distinct : Fill::Normal)}, ref_pool(c)};
  return k;
}

// x [N, D] through E experts of width H (top_k per token) plus a shared MLP of
// width SH (0: the four shared inputs left out). Bias updates are off unless
// attrs say otherwise: the gradient check runs hundreds of training forwards.
OpCase moe_case(const std::string& name, int64_t N, int64_t D, int64_t E, int64_t H, int64_t SH, MoeCfg c, json attrs = {},
                float router_scale = 1.0f) {
  json a = {{"top_k", c.top_k}, {"affinity", c.sigmoid ? "sigmoid" : "softmax"}, {"bias_update_speed", 0.0},
            {"capacity_factor", c.capacity_factor}};
  for (auto& [k, v] : attrs.items()) a[k] = v;
  OpCase k{name, "moe", a, {in("x", {N, D}), param("router", {E, D}), param("w1", {E, H, D}), param("b1", {E, H}),
                            param("w2", {E, D, H}), param("b2", {E, D})},
           ref_moe(c)};
  if (SH > 0)
    for (Operand o : {param("sw1", {SH, D}), param("sb1", {SH}), param("sw2", {D, SH}), param("sb2", {D})}) k.operands.push_back(o);
  for (Operand o : {buffer("bias", {E}), buffer("load", {E}), buffer("balance_loss", {1})}) k.operands.push_back(o);
  k.adjust = moe_separate(c, router_scale);
  return k;
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> v;

  // linear / matmul
  v.push_back({"linear_bias", "linear", {}, {in("x", {3, 5}), param("weight", {4, 5}), param("bias", {4})}, ref_linear});
  v.push_back({"linear_nobias", "linear", {}, {in("x", {3, 5}), param("weight", {4, 5})}, ref_linear});
  v.push_back({"linear_3d_input", "linear", {}, {in("x", {2, 3, 5}), param("weight", {4, 5}), param("bias", {4})}, ref_linear});
  v.push_back({"matmul_2d", "matmul", {}, {in("a", {3, 4}), param("b", {4, 5})}, ref_matmul});
  v.push_back({"matmul_batched_shared_b", "matmul", {}, {in("a", {2, 3, 4}), param("b", {4, 5})}, ref_matmul});
  v.push_back({"matmul_batched_b", "matmul", {}, {in("a", {2, 3, 4}), in("b", {2, 4, 5})}, ref_matmul});
  v.push_back({"matmul_4d_batched_b", "matmul", {}, {in("a", {2, 2, 3, 4}), in("b", {2, 2, 4, 3})}, ref_matmul});

  // conv2d
  v.push_back(conv_case("conv2d_basic_bias", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {}, {}));
  v.push_back(conv_case("conv2d_basic_nobias", {2, 3, 5, 5}, {4, 3, 3, 3}, false, {}, {}));
  v.push_back(conv_case("conv2d_stride2_pad1_bias", {2, 3, 6, 6}, {4, 3, 3, 3}, true, {2, 2, 1, 1},
                        {{"stride", 2}, {"padding", 1}}));
  v.push_back(conv_case("conv2d_stride2_pad1_nobias", {2, 3, 7, 7}, {4, 3, 3, 3}, false, {2, 2, 1, 1},
                        {{"stride", {2, 2}}, {"padding", {1, 1}}}));
  v.push_back(conv_case("conv2d_stride2_floor", {1, 2, 6, 6}, {3, 2, 3, 3}, true, {2, 2, 0, 0}, {{"stride", 2}}));
  v.push_back(conv_case("conv2d_dilation2", {2, 2, 7, 7}, {3, 2, 3, 3}, true, {1, 1, 0, 0, 2, 2}, {{"dilation", 2}}));
  v.push_back(conv_case("conv2d_dilation2_pad2", {1, 2, 6, 6}, {3, 2, 3, 3}, false, {1, 1, 2, 2, 2, 2},
                        {{"dilation", 2}, {"padding", 2}}));
  v.push_back(conv_case("conv2d_groups2_bias", {2, 4, 5, 5}, {6, 2, 3, 3}, true, {1, 1, 1, 1, 1, 1, 2},
                        {{"groups", 2}, {"padding", 1}}));
  v.push_back(conv_case("conv2d_groups2_nobias", {2, 4, 5, 5}, {4, 2, 3, 3}, false, {1, 1, 0, 0, 1, 1, 2},
                        {{"groups", 2}}));
  v.push_back(conv_case("conv2d_depthwise", {2, 3, 5, 5}, {3, 1, 3, 3}, true, {1, 1, 1, 1, 1, 1, 3},
                        {{"groups", 3}, {"padding", 1}}));
  v.push_back(conv_case("conv2d_1channel", {2, 1, 6, 6}, {2, 1, 3, 3}, true, {1, 1, 1, 1}, {{"padding", 1}}));
  v.push_back(conv_case("conv2d_1channel_nobias", {2, 1, 5, 5}, {3, 1, 2, 2}, false, {}, {}));
  v.push_back(conv_case("conv2d_rect", {2, 2, 5, 6}, {3, 2, 2, 3}, true, {1, 2, 1, 0}, {{"stride", {1, 2}}, {"padding", {1, 0}}}));
  v.push_back(conv_case("conv2d_1x1", {2, 4, 3, 3}, {5, 4, 1, 1}, true, {}, {}));
  v.push_back(conv_case("conv2d_s2_p1_d2_g2", {2, 4, 8, 8}, {4, 2, 3, 3}, true, {2, 2, 1, 1, 2, 2, 2},
                        {{"stride", 2}, {"padding", 1}, {"dilation", 2}, {"groups", 2}}));
  // 16+ channels: oneDNN picks blocked layouts, so the LayoutBridge reorders
  // (and the backward's reuse of the forward's reordered input) are exercised.
  v.push_back(conv_case("conv2d_blocked_16to32", {2, 16, 6, 6}, {32, 16, 3, 3}, true, {1, 1, 1, 1}, {{"padding", 1}}));
  v.push_back(conv_case("conv2d_blocked_s2_g2", {2, 32, 7, 7}, {32, 16, 3, 3}, false, {2, 2, 1, 1, 1, 1, 2},
                        {{"stride", 2}, {"padding", 1}, {"groups", 2}}));
  v.push_back(conv_case("conv2d_blocked_3to16", {2, 3, 8, 8}, {16, 3, 3, 3}, true, {1, 1, 1, 1}, {{"padding", 1}}));

  // pooling
  v.push_back(pool_case("maxpool_k2", {2, 3, 4, 4}, {}, {{"kernel", 2}}));
  v.push_back(pool_case("maxpool_k2_odd_input", {2, 2, 5, 5}, {}, {{"kernel", 2}}));
  v.push_back(pool_case("maxpool_k3_s1", {2, 2, 5, 5}, {3, 3, 1, 1}, {{"kernel", 3}, {"stride", 1}}));
  v.push_back(pool_case("maxpool_k3_s2_p1", {2, 2, 7, 7}, {3, 3, 2, 2, 1, 1}, {{"kernel", 3}, {"stride", 2}, {"padding", 1}}));
  v.push_back(pool_case("maxpool_k2_s1_p1", {1, 2, 4, 4}, {2, 2, 1, 1, 1, 1}, {{"kernel", 2}, {"stride", 1}, {"padding", 1}}));
  v.push_back(pool_case("maxpool_rect", {2, 2, 6, 5}, {3, 2, 2, 1, 1, 0},
                        {{"kernel", {3, 2}}, {"stride", {2, 1}}, {"padding", {1, 0}}}));
  v.push_back(pool_case("avgpool_k2", {2, 3, 4, 4}, {2, 2, 2, 2, 0, 0, false}, {{"kernel", 2}}));
  v.push_back(pool_case("avgpool_k3_s1", {2, 2, 5, 5}, {3, 3, 1, 1, 0, 0, false}, {{"kernel", 3}, {"stride", 1}}));
  v.push_back(pool_case("avgpool_k3_s2_p1_incl_pad", {2, 2, 7, 7}, {3, 3, 2, 2, 1, 1, false, true},
                        {{"kernel", 3}, {"stride", 2}, {"padding", 1}, {"count_include_pad", 1}}));
  v.push_back(pool_case("avgpool_k3_s2_p1_excl_pad", {2, 2, 7, 7}, {3, 3, 2, 2, 1, 1, false, false},
                        {{"kernel", 3}, {"stride", 2}, {"padding", 1}, {"count_include_pad", 0}}));
  v.push_back(pool_case("avgpool_k2_s1_p1_incl_pad", {1, 2, 4, 4}, {2, 2, 1, 1, 1, 1, false, true},
                        {{"kernel", 2}, {"stride", 1}, {"padding", 1}}));
  v.push_back(pool_case("avgpool_k2_s1_p1_excl_pad", {1, 2, 4, 4}, {2, 2, 1, 1, 1, 1, false, false},
                        {{"kernel", 2}, {"stride", 1}, {"padding", 1}, {"count_include_pad", 0}}));
  v.push_back(pool_case("avgpool_k2_s2_odd_input", {2, 2, 5, 5}, {2, 2, 2, 2, 0, 0, false}, {{"kernel", 2}}));
  v.push_back({"global_avgpool", "global_avgpool", {}, {in("x", {2, 3, 4, 5})}, ref_global_avgpool});

  // normalization
  for (auto [name, shape] : std::vector<std::pair<std::string, Shape>>{{"batchnorm_2d", {6, 3}}, {"batchnorm_4d", {2, 3, 3, 3}}}) {
    const int64_t C = shape[1];
    OpCase k{name, "batchnorm", {}, {in("x", shape), param("gamma", {C}), param("beta", {C}),
                                     buffer("running_mean", {C}), buffer("running_var", {C}, Fill::Positive)},
             ref_batchnorm(1e-5)};
    k.eps = 5e-3f;
    v.push_back(k);
  }
  {
    OpCase k{"batchnorm_4d_eps", "batchnorm", {{"eps", 0.1}}, {in("x", {3, 2, 2, 2}), param("gamma", {2}), param("beta", {2}),
                                                             buffer("running_mean", {2}), buffer("running_var", {2}, Fill::Positive)},
             ref_batchnorm(0.1)};
    v.push_back(k);
  }
  v.push_back({"layernorm_2d", "layernorm", {}, {in("x", {3, 6}), param("gamma", {6}), param("beta", {6})}, ref_layernorm});
  v.push_back({"layernorm_3d", "layernorm", {}, {in("x", {2, 3, 5}), param("gamma", {5}), param("beta", {5})}, ref_layernorm});

  // activations
  v.push_back({"relu", "relu", {}, {in("x", {3, 7}, Fill::AwayFromZero)}, ref_unary([](double x) { return x > 0 ? x : 0; })});
  v.push_back({"relu_4d", "relu", {}, {in("x", {2, 3, 2, 2}, Fill::AwayFromZero)}, ref_unary([](double x) { return x > 0 ? x : 0; })});
  v.push_back({"leaky_relu_default", "leaky_relu", {}, {in("x", {3, 7}, Fill::AwayFromZero)},
               ref_unary([](double x) { return x > 0 ? x : 0.01 * x; })});
  v.push_back({"leaky_relu_alpha0_2", "leaky_relu", {{"alpha", 0.2}}, {in("x", {3, 7}, Fill::AwayFromZero)},
               ref_unary([](double x) { return x > 0 ? x : 0.2 * x; })});
  v.push_back({"gelu", "gelu", {}, {in("x", {3, 7})}, ref_unary([](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); })});
  v.push_back({"sigmoid", "sigmoid", {}, {in("x", {3, 7})}, ref_unary([](double x) { return 1 / (1 + std::exp(-x)); })});
  v.push_back({"tanh", "tanh", {}, {in("x", {3, 7})}, ref_unary([](double x) { return std::tanh(x); })});
  v.push_back({"clip_both", "clip", {{"min", -0.5}, {"max", 0.5}}, {in("x", {4, 9}, Fill::AwayFromKinks)},
               ref_unary([](double x) { return std::min(std::max(x, -0.5), 0.5); })});
  v.push_back({"clip_min_only", "clip", {{"min", -0.5}}, {in("x", {4, 9}, Fill::AwayFromKinks)},
               ref_unary([](double x) { return std::max(x, -0.5); })});
  v.push_back({"clip_max_only", "clip", {{"max", 0.5}}, {in("x", {2, 3, 2, 2}, Fill::AwayFromKinks)},
               ref_unary([](double x) { return std::min(x, 0.5); })});
  v.push_back({"clip_relu6", "clip", {{"min", 0.0}, {"max", 6.0}}, {in("x", {4, 9}, Fill::AwayFromKinks)},
               ref_unary([](double x) { return std::min(std::max(x, 0.0), 6.0); })});

  // elementwise binary
  v.push_back({"add_same_shape", "add", {}, {in("a", {2, 3, 4}), in("b", {2, 3, 4})}, ref_binary(false)});
  v.push_back({"add_bcast_channel", "add", {}, {in("x", {2, 3, 4, 4}), param("b", {3, 1, 1})}, ref_binary(false)});
  v.push_back({"add_bcast_both_sides", "add", {}, {in("a", {2, 3, 1}), param("b", {1, 4})}, ref_binary(false)});
  v.push_back({"add_param_first", "add", {}, {param("b", {5}), in("x", {2, 5})}, ref_binary(false)});
  v.push_back({"mul_same_shape", "mul", {}, {in("a", {2, 3, 4}), in("b", {2, 3, 4})}, ref_binary(true)});
  v.push_back({"mul_bcast_vector", "mul", {}, {in("x", {2, 5}), param("s", {5})}, ref_binary(true)});
  v.push_back({"mul_bcast_channel", "mul", {}, {in("x", {2, 3, 4, 4}), param("s", {3, 1, 1})}, ref_binary(true)});
  v.push_back({"mul_bcast_both_sides", "mul", {}, {in("a", {2, 3, 1}), param("b", {1, 4})}, ref_binary(true)});
  auto sub = [](double a, double b) { return a - b; };
  auto div = [](double a, double b) { return a / b; };
  v.push_back({"sub_same_shape", "sub", {}, {in("a", {2, 3, 4}), in("b", {2, 3, 4})}, ref_binary_fn(sub)});
  v.push_back({"sub_bcast_channel", "sub", {}, {in("x", {2, 3, 4, 4}), param("m", {3, 1, 1})}, ref_binary_fn(sub)});
  v.push_back({"sub_param_first", "sub", {}, {param("b", {5}), in("x", {2, 5})}, ref_binary_fn(sub)});
  v.push_back({"sub_bcast_both_sides", "sub", {}, {in("a", {2, 3, 1}), param("b", {1, 4})}, ref_binary_fn(sub)});
  // Divisors in [0.5, 1.5]: away from the pole at 0.
  v.push_back({"div_same_shape", "div", {}, {in("a", {2, 3, 4}), in("b", {2, 3, 4}, Fill::Positive)}, ref_binary_fn(div)});
  v.push_back({"div_bcast_channel", "div", {}, {in("x", {2, 3, 4, 4}), param("s", {3, 1, 1}, Fill::Positive)}, ref_binary_fn(div)});
  v.push_back({"div_param_first", "div", {}, {param("n", {5}), in("x", {2, 5}, Fill::Positive)}, ref_binary_fn(div)});
  v.push_back({"div_bcast_both_sides", "div", {}, {in("a", {2, 3, 1}), param("b", {1, 4}, Fill::Positive)}, ref_binary_fn(div)});

  // shape ops
  v.push_back({"flatten_axis1", "flatten", {}, {in("x", {2, 3, 4, 5})},
               ref_copy_to([](const Shape& s) { return Shape{s[0], s[1] * s[2] * s[3]}; })});
  v.push_back({"flatten_axis2", "flatten", {{"axis", 2}}, {in("x", {2, 3, 4, 5})},
               ref_copy_to([](const Shape& s) { return Shape{s[0] * s[1], s[2] * s[3]}; })});
  v.push_back({"flatten_axis_minus1", "flatten", {{"axis", -1}}, {in("x", {2, 3, 4})},
               ref_copy_to([](const Shape& s) { return Shape{s[0] * s[1], s[2]}; })});
  v.push_back({"reshape_0_minus1", "reshape", {{"shape", {0, -1}}}, {in("x", {2, 3, 4})},
               ref_copy_to([](const Shape& s) { return Shape{s[0], s[1] * s[2]}; })});
  v.push_back({"reshape_0_4_minus1", "reshape", {{"shape", {0, 4, -1}}}, {in("x", {2, 3, 4})},
               ref_copy_to([](const Shape& s) { return Shape{s[0], 4, 3}; })});
  v.push_back({"reshape_explicit", "reshape", {{"shape", {0, 2, 3, 2}}}, {in("x", {2, 12})},
               ref_copy_to([](const Shape& s) { return Shape{s[0], 2, 3, 2}; })});
  v.push_back({"transpose_2d", "transpose", {{"perm", {1, 0}}}, {in("x", {3, 5})}, ref_transpose({1, 0})});
  v.push_back({"transpose_3d_last_two", "transpose", {{"perm", {0, 2, 1}}}, {in("x", {2, 3, 4})}, ref_transpose({0, 2, 1})});
  v.push_back({"transpose_4d_nchw_to_nhwc", "transpose", {{"perm", {0, 2, 3, 1}}}, {in("x", {2, 3, 4, 5})},
               ref_transpose({0, 2, 3, 1})});
  v.push_back({"transpose_4d_reverse", "transpose", {{"perm", {3, 2, 1, 0}}}, {in("x", {2, 3, 1, 4})},
               ref_transpose({3, 2, 1, 0})});
  v.push_back({"concat_axis1", "concat", {{"axis", 1}}, {in("a", {2, 3}), in("b", {2, 4})}, ref_concat(1)});
  v.push_back({"concat_axis1_4d", "concat", {{"axis", 1}}, {in("a", {2, 1, 2, 3}), param("b", {2, 2, 2, 3}), in("c", {2, 3, 2, 3})},
               ref_concat(1)});
  v.push_back({"concat_axis0_3_inputs", "concat", {{"axis", 0}}, {in("a", {2, 3}), in("b", {1, 3}), in("c", {3, 3})}, ref_concat(0)});
  v.push_back({"concat_axis_minus1", "concat", {{"axis", -1}}, {in("a", {2, 3, 2}), in("b", {2, 3, 3})}, ref_concat(-1)});

  // softmax
  v.push_back({"softmax_last", "softmax", {}, {in("x", {3, 6})}, ref_softmax(-1, false)});
  v.push_back({"softmax_axis1_3d", "softmax", {{"axis", 1}}, {in("x", {2, 4, 3})}, ref_softmax(1, false)});
  v.push_back({"log_softmax_last", "log_softmax", {}, {in("x", {3, 6})}, ref_softmax(-1, true)});
  v.push_back({"log_softmax_axis1_3d", "log_softmax", {{"axis", 1}}, {in("x", {2, 4, 3})}, ref_softmax(1, true)});

  v.push_back({"softmax_wide_logits", "softmax", {}, {in("x", {3, 6}, Fill::Wide)}, ref_softmax(-1, false)});
  v.push_back({"log_softmax_wide_logits", "log_softmax", {}, {in("x", {3, 6}, Fill::Wide)}, ref_softmax(-1, true)});

  // losses
  v.push_back({"cross_entropy", "cross_entropy", {}, {in("logits", {4, 5}), labels("labels", 4, 5)}, ref_cross_entropy(0.0)});
  v.push_back({"cross_entropy_smooth0_1", "cross_entropy", {{"label_smoothing", 0.1}},
               {in("logits", {4, 5}), labels("labels", 4, 5)}, ref_cross_entropy(0.1)});
  v.push_back({"cross_entropy_wide_logits", "cross_entropy", {{"label_smoothing", 0.1}},
               {in("logits", {4, 5}, Fill::Wide), labels("labels", 4, 5)}, ref_cross_entropy(0.1)});
  v.push_back({"cross_entropy_weighted", "cross_entropy", {},
               {in("logits", {4, 5}), labels("labels", 4, 5), no_grad(in("weights", {4}, Fill::Positive))}, ref_cross_entropy(0.0)});
  v.push_back({"cross_entropy_weighted_smooth0_1_param_weights", "cross_entropy", {{"label_smoothing", 0.1}},
               {in("logits", {4, 5}), labels("labels", 4, 5), buffer("weights", {4}, Fill::Positive)}, ref_cross_entropy(0.1)});
  v.push_back({"soft_cross_entropy", "soft_cross_entropy", {}, {in("logits", {4, 5}), no_grad(in("targets", {4, 5}, Fill::Simplex))},
               ref_soft_cross_entropy});
  v.push_back({"soft_cross_entropy_weighted", "soft_cross_entropy", {},
               {in("logits", {4, 5}), no_grad(in("targets", {4, 5}, Fill::Simplex)), no_grad(in("weights", {4}, Fill::Positive))},
               ref_soft_cross_entropy});
  // Rows of U(0.5, 1.5) values summing to about 5, not 1: the gradient is p * sum(t) - t, not p - t.
  v.push_back({"soft_cross_entropy_unnormalized_targets", "soft_cross_entropy", {},
               {in("logits", {4, 5}), no_grad(in("targets", {4, 5}, Fill::Positive)), no_grad(in("weights", {4}, Fill::Positive))},
               ref_soft_cross_entropy});
  v.push_back({"soft_cross_entropy_wide_logits", "soft_cross_entropy", {},
               {in("logits", {4, 5}, Fill::Wide), buffer("targets", {4, 5}, Fill::Simplex)}, ref_soft_cross_entropy});
  v.push_back({"mse", "mse", {}, {in("pred", {3, 4}), in("target", {3, 4})}, ref_mse});
  v.push_back({"mse_param_target", "mse", {}, {in("pred", {2, 3, 2}), param("target", {2, 3, 2})}, ref_mse});

  // neuron_gate: the gradient check covers x; the gates' straight-through
  // gradient is not a finite difference of anything (the mask is a step
  // function) and has its own test, NeuronGate.GatesGetStraightThroughGradient.
  v.push_back({"neuron_gate_2d", "neuron_gate", {},
               {in("x", {4, 8}), no_grad(param("gates", {8}, Fill::Distinct)), constant_buffer("sparsity", {1}, 0.75f)},
               ref_neuron_gate});
  v.push_back({"neuron_gate_4d", "neuron_gate", {},
               {in("x", {2, 4, 3, 3}), no_grad(param("gates", {4}, Fill::Distinct)), constant_buffer("sparsity", {1}, 0.5f)},
               ref_neuron_gate});
  v.push_back({"neuron_gate_sparsity0", "neuron_gate", {},
               {in("x", {3, 5}), no_grad(param("gates", {5}, Fill::Distinct)), constant_buffer("sparsity", {1}, 0.0f)},
               ref_neuron_gate});

  // Mixture of Experts: softmax and sigmoid affinities, top-1 and top-2, with and without shared experts.
  v.push_back(moe_case("moe_softmax_top1_shared", 8, 5, 4, 3, 6, {1, false}));
  v.push_back(moe_case("moe_softmax_top2_noshared", 8, 5, 4, 3, 0, {2, false}));
  v.push_back(moe_case("moe_softmax_top2_shared", 8, 5, 4, 3, 3, {2, false}));
  {
    // Sigmoid gates normalized over one chosen expert are always 1: the router
    // gets no gradient through them (test_moe checks it is exactly zero).
    OpCase k = moe_case("moe_sigmoid_top1_noshared", 8, 5, 4, 3, 0, {1, true});
    k.operands[1].grad = false;
    v.push_back(k);
  }
  v.push_back(moe_case("moe_sigmoid_top2_shared", 8, 5, 4, 3, 6, {2, true}));
  v.push_back(moe_case("moe_sigmoid_top2_noshared", 8, 5, 4, 3, 0, {2, true}));
  v.push_back(moe_case("moe_sigmoid_top3_of_6", 10, 4, 6, 2, 0, {3, true}));
  v.push_back(moe_case("moe_softmax_all_experts", 6, 4, 3, 2, 2, {3, false}));
  // Capacity 3 (then 5) per expert for 24 pairs over 4 experts: some tokens must drop experts.
  v.push_back(moe_case("moe_softmax_capacity", 12, 5, 4, 3, 6, {2, false, 0.5}));
  v.push_back(moe_case("moe_sigmoid_capacity_noshared", 12, 5, 4, 3, 0, {2, true, 0.75}));
  // l0_gate: eval mode against the formula, gradients by finite differences
  // (lambda = 0 here; the penalty's gradient and training-mode sampling have
  // their own tests below, L0Gate.*). log_alpha spans closed (z = 0),
  // partly open and fully open (z = 1) gates.
  for (auto [name, x] : std::vector<std::pair<std::string, Shape>>{{"l0_gate_eval_2d", {4, 12}}, {"l0_gate_eval_4d", {2, 6, 3, 3}}}) {
    OpCase k{name, "l0_gate", {}, {in("x", x), param("log_alpha", {x[1]}, Fill::L0LogAlpha)}, ref_l0_gate_eval};
    k.fwd_modes = {false};
    k.grad_training = false;
    v.push_back(k);
  }
  {
    OpCase k{"l0_gate_eval_with_buffers", "l0_gate", {},
             {in("x", {3, 10}), param("log_alpha", {10}, Fill::L0LogAlpha), constant_buffer("l0_weight", {1}, 0.0f),
              constant_buffer("l0_penalty", {1}, 0.0f)},
             ref_l0_gate_eval};
    k.fwd_modes = {false};
    k.grad_training = false;
    v.push_back(k);
  }

  // block_gated_linear: forward against the dense reference, gradients for
  // x, weight, bias and gate_weight. eps 1e-3: perturbed scores move by less
  // than 0.005, so no row's top-k choice flips (the reference checks a 0.02 gap).
  for (auto [name, blocks, top_k] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"block_gated_linear_top2of4", 4, 2}, {"block_gated_linear_top3of6", 6, 3}, {"block_gated_linear_all_blocks", 4, 4}}) {
    OpCase k{name, "block_gated_linear", {{"blocks", blocks}, {"top_k", top_k}},
             {in("x", {5, 7}), param("weight", {blocks * 3, 7}), param("bias", {blocks * 3}), param("gate_weight", {blocks, 7})},
             ref_block_gated_linear(blocks, top_k)};
    k.eps = 1e-3f;
    v.push_back(k);
  }
  {
    // top_k 1: g = 1 whatever the score, so gate_weight gets no gradient (and has no finite difference).
    OpCase k{"block_gated_linear_top1of4", "block_gated_linear", {{"blocks", 4}, {"top_k", 1}},
             {in("x", {6, 5}), param("weight", {8, 5}), param("bias", {8}), no_grad(param("gate_weight", {4, 5}))},
             ref_block_gated_linear(4, 1)};
    k.eps = 1e-3f;
    v.push_back(k);
  }

  // Large enough (> 65536 elements) to take the kernels' OpenMP-parallel paths; each forward
  // costs more, so the gradient check samples 16 elements per tensor.
  std::vector<OpCase> large;
  large.push_back({"large_relu", "relu", {}, {in("x", {300, 256}, Fill::AwayFromZero)}, ref_unary([](double x) { return x > 0 ? x : 0; })});
  large.push_back({"large_tanh", "tanh", {}, {in("x", {300, 256})}, ref_unary([](double x) { return std::tanh(x); })});
  large.push_back({"large_add_same_shape", "add", {}, {in("a", {300, 256}), in("b", {300, 256})}, ref_binary(false)});
  large.push_back({"large_mul_same_shape", "mul", {}, {in("a", {300, 256}), in("b", {300, 256})}, ref_binary(true)});
  large.push_back({"large_sub_bcast", "sub", {}, {in("x", {300, 256}), param("m", {256})}, ref_binary_fn(sub)});
  large.push_back({"large_div_same_shape", "div", {}, {in("a", {300, 256}), in("b", {300, 256}, Fill::Positive)}, ref_binary_fn(div)});
  large.push_back({"large_transpose", "transpose", {{"perm", {0, 2, 1}}}, {in("x", {30, 64, 40})}, ref_transpose({0, 2, 1})});
  large.push_back({"large_mul_bcast", "mul", {}, {in("x", {300, 256}), param("s", {256})}, ref_binary(true)});
  large.push_back({"large_softmax", "softmax", {}, {in("x", {600, 128})}, ref_softmax(-1, false)});
  large.push_back({"large_log_softmax_axis1", "log_softmax", {{"axis", 1}}, {in("x", {64, 40, 32})}, ref_softmax(1, true)});
  large.push_back({"large_layernorm", "layernorm", {}, {in("x", {600, 128}), param("gamma", {128}), param("beta", {128})}, ref_layernorm});
  large.push_back({"large_global_avgpool", "global_avgpool", {}, {in("x", {4, 8, 48, 48})}, ref_global_avgpool});
  large.push_back({"large_neuron_gate_4d", "neuron_gate", {},
                   {in("x", {32, 16, 24, 24}), no_grad(param("gates", {16}, Fill::Distinct)),
                    constant_buffer("sparsity", {1}, 0.25f)},
                   ref_neuron_gate});
  large.push_back({"large_linear", "linear", {}, {in("x", {512, 16}), param("weight", {160, 16}), param("bias", {160})}, ref_linear});
  // 2100 tokens x top-2 x 64 features: the gather, scatter and routing loops run in parallel.
  large.push_back(moe_case("large_moe_sigmoid_top2_shared", 2100, 64, 8, 16, 32, {2, true}, {}, 0.1f));
  {
    OpCase k{"large_l0_gate_eval_4d", "l0_gate", {}, {in("x", {32, 16, 24, 24}), param("log_alpha", {16}, Fill::L0LogAlpha)},
             ref_l0_gate_eval};
    k.fwd_modes = {false};
    k.grad_training = false;
    large.push_back(k);
  }
  {
    OpCase k{"large_block_gated_linear", "block_gated_linear", {{"blocks", 8}, {"top_k", 2}},
             {in("x", {300, 512}), param("weight", {64, 512}), param("bias", {64}), param("gate_weight", {8, 512})},
             ref_block_gated_linear(8, 2)};
    k.eps = 1e-3f;
    large.push_back(k);
  }

  for (OpCase& k : large) {
    k.max_checked = 16;
    v.push_back(k);
  }

  // dropout: eval only here (identity); training is tested separately
  {
    OpCase k{"dropout_eval", "dropout", {{"p", 0.5}}, {in("x", {3, 7})}, ref_copy_to([](const Shape& s) { return s; })};
    k.fwd_modes = {false};
    k.grad_training = false;
    v.push_back(k);
  }
  return v;
}

const std::vector<OpCase>& cases() {
  static const std::vector<OpCase> c = all_cases();
  return c;
}

std::string case_name(const testing::TestParamInfo<OpCase>& info) { return info.param.name; }
// So gtest names a failing case instead of dumping its bytes.
void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

// LEANAI_TEST_VERBOSE=1 prints every measured error (to review tolerances).
bool verbose() {
  static const bool v = std::getenv("LEANAI_TEST_VERBOSE") != nullptr;
  return v;
}

// ---------------------------------------------------------------------------
// Parameterized tests
// ---------------------------------------------------------------------------

class OpForward : public testing::TestWithParam<OpCase> {};
class OpGrad : public testing::TestWithParam<OpCase> {};

TEST_P(OpForward, MatchesReference) {
  const OpCase& c = GetParam();
  for (bool training : c.fwd_modes) {
    SCOPED_TRACE(training ? "training" : "eval");
    Built b = build(c, 1234);
    const std::vector<Tensor> before = clone_all(b.operands);
    Executor ex(*b.graph);
    ex.set_training(training);
    const Tensor& out = ex.forward(b.inputs);
    const Ref r = c.ref(before, training);
    ASSERT_EQ(out.shape(), r.shape) << shape_str(out.shape()) << " vs " << shape_str(r.shape);
    ASSERT_EQ(out.dtype(), DType::f32);
    const double err = norm_error(out.data<float>(), r.v);
    EXPECT_LT(err, c.fwd_tol) << "normalized error " << err;
    if (verbose()) std::printf("fwd  %-32s %-5s err %.3g\n", c.name.c_str(), training ? "train" : "eval", err);
    // A second run on the same (cached) instance gives the same result.
    const Tensor& again = ex.forward(b.inputs);
    EXPECT_LT(norm_error(again.data<float>(), r.v), c.fwd_tol) << "second run";
  }
}

// One tensor whose gradient is checked: its storage (shared with the graph, so
// writing into it perturbs what the executor sees) and where its analytic
// gradient lives after backward.
struct GradTarget {
  std::string label;
  Tensor value;
  std::function<const Tensor&(Executor&)> grad;
};

// Runs forward and backward(R) for the projection loss L = sum(out * R), then
// compares each target's gradient with central differences of L (all elements
// of small tensors, a seeded subset of 64 otherwise) by normalized error.
// The executor must be set up (training mode, input gradients) by the caller.
void check_gradients(Executor& ex, const std::vector<Tensor>& inputs, const std::vector<GradTarget>& targets, float eps,
                     double tol, const std::string& what, int64_t max_checked = 64) {
  const Shape out_shape = ex.forward(inputs).shape();
  const Tensor R = random_tensor(out_shape, 99);
  ex.backward(R);
  std::vector<Tensor> analytic;
  for (const GradTarget& t : targets) {
    const Tensor& g = t.grad(ex);
    ASSERT_EQ(g.shape(), t.value.shape()) << "gradient of " << t.label;
    analytic.push_back(g.clone());
  }
  ASSERT_FALSE(targets.empty());

  auto loss = [&] {
    const Tensor& out = ex.forward(inputs);
    double s = 0;
    for (int64_t i = 0; i < out.numel(); ++i) s += static_cast<double>(out.data<float>()[i]) * R.data<float>()[i];
    return s;
  };
  for (size_t t = 0; t < targets.size(); ++t) {
    SCOPED_TRACE("gradient of " + targets[t].label);
    float* p = targets[t].value.data<float>();
    std::vector<double> num, ana;
    for (int64_t k : check_indices(targets[t].value.numel(), 7 + t, max_checked)) {
      const float orig = p[k];
      const float hi = orig + eps, lo = orig - eps;
      p[k] = hi;
      const double lp = loss();
      p[k] = lo;
      const double lm = loss();
      p[k] = orig;
      num.push_back((lp - lm) / (static_cast<double>(hi) - lo));
      ana.push_back(analytic[t].data<float>()[k]);
    }
    double nn = 0;
    for (double x : num) nn += x * x;
    ASSERT_GT(nn, 1e-12) << "finite differences are all zero: the check would be vacuous";
    const double err = norm_error(ana, num);
    EXPECT_LT(err, tol) << "normalized error " << err << " over " << num.size() << " elements";
    if (verbose())
      std::printf("grad %-32s %-14s err %.3g (%zu elements)\n", what.c_str(), targets[t].label.c_str(), err, num.size());
  }
}

// Every f32 input (unless with_inputs is false) and every trainable parameter of a graph.
std::vector<GradTarget> all_targets(Graph& g, const std::vector<Tensor>& inputs, bool with_inputs = true) {
  std::vector<GradTarget> out;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (with_inputs && inputs[i].dtype() == DType::f32)
      out.push_back({g.node(g.inputs()[i]).name, inputs[i], [i](Executor& ex) -> const Tensor& { return ex.input_grad(static_cast<int>(i)); }});
  for (auto& [name, p] : g.params())
    if (p.trainable) out.push_back({name, p.value, [name = name](Executor& ex) -> const Tensor& { return ex.grad(name); }});
  return out;
}

TEST_P(OpGrad, MatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  if (!c.check_grad) GTEST_SKIP() << "no backward for this case";
  Built b = build(c, 4321);
  Executor ex(*b.graph);
  ex.set_training(c.grad_training);
  ex.set_input_grads(true);
  std::vector<GradTarget> targets = all_targets(*b.graph, b.inputs);
  std::erase_if(targets, [&](const GradTarget& t) {
    return std::any_of(c.operands.begin(), c.operands.end(), [&](const Operand& o) { return o.name == t.label && !o.grad; });
  });
  check_gradients(ex, b.inputs, targets, c.eps, c.grad_tol, c.name, c.max_checked);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpForward, testing::ValuesIn(cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpGrad, testing::ValuesIn(cases()), case_name);

// ---------------------------------------------------------------------------
// Batch norm running statistics
// ---------------------------------------------------------------------------

TEST(BatchNorm, RunningStatsFollowPyTorchRule) {
  for (Shape shape : {Shape{6, 3}, Shape{2, 3, 3, 3}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t C = shape[1];
    Rng rng(5);
    Graph g;
    Tensor x = make_operand(in("x", shape), rng);
    Tensor rm = make_operand(buffer("rm", {C}), rng), rv = make_operand(buffer("rv", {C}, Fill::Positive), rng);
    const Tensor rm0 = rm.clone(), rv0 = rv.clone();
    int xi = g.add_input("x", Shape(shape.begin() + 1, shape.end()));
    int gi = g.add_param("gamma", Tensor::full({C}, 1.0f));
    int bi = g.add_param("beta", Tensor::zeros({C}));
    int mi = g.add_param("running_mean", rm, false);
    int vi = g.add_param("running_var", rv, false);
    g.set_output(g.add("batchnorm", {xi, gi, bi, mi, vi}));
    EXPECT_EQ(g.num_trainable_parameters(), 2 * C);
    Executor ex(g);
    ex.set_training(true);
    ex.forward({x});

    const int64_t N = shape[0], HW = shape.size() == 4 ? shape[2] * shape[3] : 1, count = N * HW;
    for (int64_t c = 0; c < C; ++c) {
      double s = 0, sq = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < HW; ++i) s += F(x)[(n * C + c) * HW + i];
      const double mean = s / count;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < HW; ++i) sq += std::pow(F(x)[(n * C + c) * HW + i] - mean, 2);
      const double unbiased = sq / (count - 1);
      EXPECT_NEAR(F(g.param("running_mean").value)[c], 0.9 * F(rm0)[c] + 0.1 * mean, 1e-5) << "channel " << c;
      EXPECT_NEAR(F(g.param("running_var").value)[c], 0.9 * F(rv0)[c] + 0.1 * unbiased, 1e-5) << "channel " << c;
    }
    // The running statistics are not trainable: no gradient buffer.
    EXPECT_THROW(ex.grad("running_mean"), Error);

    // Eval leaves them alone and normalizes with them.
    const Tensor rm1 = g.param("running_mean").value.clone(), rv1 = g.param("running_var").value.clone();
    ex.set_training(false);
    const Tensor& y = ex.forward({x});
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_EQ(F(g.param("running_mean").value)[c], F(rm1)[c]);
      EXPECT_EQ(F(g.param("running_var").value)[c], F(rv1)[c]);
    }
    const double expect0 = (F(x)[0] - F(rm1)[0]) / std::sqrt(F(rv1)[0] + 1e-5);
    EXPECT_NEAR(y.data<float>()[0], expect0, 1e-4);
  }
}

TEST(BatchNorm, MomentumAttribute) {
  Graph g;
  Tensor x = random_tensor({4, 2}, 3);
  int xi = g.add_input("x", {2});
  int gi = g.add_param("gamma", Tensor::full({2}, 1.0f));
  int bi = g.add_param("beta", Tensor::zeros({2}));
  int mi = g.add_param("running_mean", Tensor::zeros({2}), false);
  int vi = g.add_param("running_var", Tensor::full({2}, 1.0f), false);
  g.set_output(g.add("batchnorm", {xi, gi, bi, mi, vi}, {{"momentum", 0.5}}));
  Executor ex(g);
  ex.set_training(true);
  ex.forward({x});
  double mean = 0;
  for (int n = 0; n < 4; ++n) mean += F(x)[n * 2];
  mean /= 4;
  EXPECT_NEAR(F(g.param("running_mean").value)[0], 0.5 * mean, 1e-6);
}

// ---------------------------------------------------------------------------
// Neuron gate: the mask rule, the straight-through gradient, errors
// ---------------------------------------------------------------------------

// x -> neuron_gate(x, gates, sparsity); `gates` and `sparsity` share storage
// with the graph's parameters, so writing into them changes the next forward.
struct GateGraph {
  Graph g;
  Tensor gates, sparsity;
  GateGraph(const Shape& sample, const std::vector<float>& gate_values, float s)
      : gates(Tensor::from_vector({static_cast<int64_t>(gate_values.size())}, gate_values)),
        sparsity(Tensor::full({1}, s)) {
    int x = g.add_input("x", sample);
    g.set_output(g.add("neuron_gate", {x, g.add_param("gates", gates), g.add_param("sparsity", sparsity, false)}));
  }
};

// The channels the op lets through, read from its output on x = 1.
std::vector<bool> channels_on(Executor& ex, int64_t channels) {
  const Tensor& y = ex.forward({Tensor::full({1, channels}, 1.0f)});
  std::vector<bool> on;
  for (int64_t c = 0; c < channels; ++c) on.push_back(y.data<float>()[c] == 1.0f);
  return on;
}

TEST(NeuronGate, MaskFollowsTheQuantileRuleWithTies) {
  GateGraph gg({6}, {0.3f, -1.0f, 0.3f, 2.0f, 0.3f, 0.5f}, 0.5f);
  Executor ex(gg.g);
  // k = 3 off: -1 (channel 1), then of the three tied at 0.3 the lower indices 0 and 2.
  EXPECT_EQ(channels_on(ex, 6), (std::vector<bool>{false, false, false, true, true, true}));
  gg.sparsity.fill(0.34f);  // k = floor(2.04) = 2
  EXPECT_EQ(channels_on(ex, 6), (std::vector<bool>{false, false, true, true, true, true}));
  gg.sparsity.fill(0.0f);  // nothing off
  EXPECT_EQ(channels_on(ex, 6), std::vector<bool>(6, true));
  gg.sparsity.fill(0.99f);  // k = 5: only the largest gate stays
  EXPECT_EQ(channels_on(ex, 6), (std::vector<bool>{false, false, false, true, false, false}));

  GateGraph equal({4}, {1.0f, 1.0f, 1.0f, 1.0f}, 0.5f);  // all tied: the lower half goes
  Executor ex2(equal.g);
  EXPECT_EQ(channels_on(ex2, 4), (std::vector<bool>{false, false, true, true}));
}

TEST(NeuronGate, ExactlyCMinusFloorSCChannelsStayOn) {
  Rng rng(11);
  for (int64_t C : {1, 3, 7, 10, 64, 100}) {
    std::vector<float> values(C);
    for (float& v : values) v = 0.5f * static_cast<float>(rng.below(3));  // many ties
    GateGraph gg({C}, values, 0.0f);
    Executor ex(gg.g);
    for (double s : {0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 0.99}) {
      gg.sparsity.fill(static_cast<float>(s));
      const std::vector<bool> on = channels_on(ex, C);
      // The decimal s (0.7 of 10 is 7), although the buffer holds the f32 0.69999999.
      const auto off = static_cast<int64_t>(std::floor(s * C + 1e-9));
      EXPECT_EQ(std::count(on.begin(), on.end(), true), C - off) << "C " << C << ", s " << s;
    }
  }
}

TEST(NeuronGate, GatesGetStraightThroughGradient) {
  for (Shape shape : {Shape{5, 6}, Shape{3, 4, 2, 3}}) {
    SCOPED_TRACE(shape_str(shape));
    const int64_t N = shape[0], C = shape[1], inner = shape_numel(shape) / (N * C);
    std::vector<float> values;
    for (int64_t c = 0; c < C; ++c) values.push_back(static_cast<float>((c * 7) % C));  // distinct, shuffled
    GateGraph gg(Shape(shape.begin() + 1, shape.end()), values, 0.5f);
    const Tensor x = random_tensor(shape, 21), R = random_tensor(shape, 22);
    Executor ex(gg.g);
    ex.set_training(true);
    ex.set_input_grads(true);
    ex.forward({x});
    ex.backward(R);
    const std::vector<bool> on = ref_gate_on(gg.gates, 0.5);
    int64_t off = 0;
    for (int64_t c = 0; c < C; ++c) {
      double expected = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < inner; ++i) expected += F(R)[(n * C + c) * inner + i] * F(x)[(n * C + c) * inner + i];
      // Every gate, on or off, gets sum(dy * x): an off gate can come back.
      EXPECT_NEAR(F(ex.grad("gates"))[c], expected, 1e-5 * (1 + std::abs(expected))) << "channel " << c;
      EXPECT_NE(F(ex.grad("gates"))[c], 0.0f) << "channel " << c;
      off += !on[c];
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t j = (n * C + c) * inner + i;
          ASSERT_EQ(F(ex.input_grad(0))[j], on[c] ? F(R)[j] : 0.0f) << "dx at " << j;
        }
    }
    EXPECT_EQ(off, C / 2);
    EXPECT_THROW(ex.grad("sparsity"), Error);  // a buffer: no gradient
  }
}

TEST(NeuronGate, CountsNoFlops) {
  GateGraph gg({2, 3, 3}, {1.0f, 2.0f}, 0.5f);
  Executor ex(gg.g);
  EXPECT_EQ(ex.flops_per_sample(), 0.0);
}

TEST(NeuronGate, BadSparsityGatesAndShapesThrow) {
  for (float s : {1.0f, -0.1f, 1.5f, std::nanf("")}) {
    GateGraph gg({3}, {1.0f, 2.0f, 3.0f}, s);
    Executor ex(gg.g);
    EXPECT_THROW(ex.forward({Tensor::full({2, 3}, 1.0f)}), Error) << "sparsity " << s;
  }
  GateGraph nan_gate({3}, {1.0f, std::nanf(""), 3.0f}, 0.5f);
  Executor ex(nan_gate.g);
  EXPECT_THROW(ex.forward({Tensor::full({2, 3}, 1.0f)}), Error);

  GateGraph wrong_count({4}, {1.0f, 2.0f, 3.0f}, 0.5f);  // 3 gates for 4 channels
  Executor ex2(wrong_count.g);
  EXPECT_THROW(ex2.forward({Tensor::full({2, 4}, 1.0f)}), Error);

  GateGraph wrong_rank({2, 3}, {1.0f, 2.0f}, 0.5f);  // [N, C, L]: neither [N, C] nor [N, C, H, W]
  Executor ex3(wrong_rank.g);
  EXPECT_THROW(ex3.forward({Tensor::full({1, 2, 3}, 1.0f)}), Error);
}

// ---------------------------------------------------------------------------
// L0 gate: training-mode sampling, its gradient, the penalty, errors
// ---------------------------------------------------------------------------

// x -> l0_gate(x, log_alpha, l0_weight, l0_penalty); the tensors share storage
// with the graph's parameters.
struct L0Graph {
  Graph g;
  Tensor log_alpha, weight, penalty;
  L0Graph(const Shape& sample, const std::vector<float>& values, float lambda, json attrs = json::object())
      : log_alpha(Tensor::from_vector({static_cast<int64_t>(values.size())}, values)),
        weight(Tensor::full({1}, lambda)),
        penalty(Tensor::zeros({1})) {
    int x = g.add_input("x", sample);
    g.set_output(g.add("l0_gate", {x, g.add_param("log_alpha", log_alpha), g.add_param("l0_weight", weight, false),
                                   g.add_param("l0_penalty", penalty, false)},
                       attrs));
  }
};

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

double max_abs_diff_f(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(F(a)[i]) - F(b)[i]));
  return m;
}

// The hard-concrete distribution (beta 2/3, gamma -0.1, zeta 1.1) written out:
// P(z = 0) = sigmoid(beta log(-gamma / zeta) - log_alpha),
// P(z = 1) = sigmoid(log_alpha - beta log((1 - gamma) / (zeta - 1))), and E[z]
// by the midpoint rule over u.
struct HardConcreteMoments {
  double p0, p1, mean;
};
HardConcreteMoments hard_concrete_moments(double a) {
  const double beta = 2.0 / 3.0, gamma = -0.1, zeta = 1.1;
  HardConcreteMoments m{sigmoid(beta * std::log(-gamma / zeta) - a), sigmoid(a - beta * std::log((1 - gamma) / (zeta - 1))), 0};
  const int steps = 200000;
  for (int i = 0; i < steps; ++i) {
    const double u = (i + 0.5) / steps;
    const double sample = sigmoid((std::log(u) - std::log(1 - u) + a) / beta) * (zeta - gamma) + gamma;
    m.mean += std::min(1.0, std::max(0.0, sample)) / steps;
  }
  return m;
}

TEST(L0Gate, TrainingSamplesFollowTheHardConcreteDistribution) {
  const std::vector<float> values = {-3.0f, -1.0f, 0.0f, 1.0f, 2.5f};
  const auto C = static_cast<int64_t>(values.size());
  L0Graph lg({C}, values, 0.0f);
  Executor ex(lg.g, 17);
  ex.set_training(true);
  // Batch of 2: both rows share the channel's draw.
  const Tensor x = Tensor::full({2, C}, 1.0f);
  const int draws = 20000;
  std::vector<double> zeros(C), ones(C), sum(C);
  for (int t = 0; t < draws; ++t) {
    const Tensor& y = ex.forward({x});
    for (int64_t c = 0; c < C; ++c) {
      const float z = y.data<float>()[c];
      ASSERT_EQ(y.data<float>()[C + c], z) << "one draw per channel and pass";
      ASSERT_TRUE(z >= 0.0f && z <= 1.0f);
      zeros[c] += z == 0.0f;
      ones[c] += z == 1.0f;
      sum[c] += z;
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    SCOPED_TRACE("log_alpha " + std::to_string(values[c]));
    const HardConcreteMoments m = hard_concrete_moments(values[c]);
    // 4.5 binomial standard deviations at 20000 draws.
    auto tol = [&](double p) { return 4.5 * std::sqrt(p * (1 - p) / draws) + 1e-4; };
    EXPECT_NEAR(zeros[c] / draws, m.p0, tol(m.p0));
    EXPECT_NEAR(ones[c] / draws, m.p1, tol(m.p1));
    EXPECT_NEAR(sum[c] / draws, m.mean, tol(0.25));
  }
}

TEST(L0Gate, SeededRunsRepeatAndDrawsDiffer) {
  const std::vector<float> values(16, 0.5f);
  const Tensor x = Tensor::full({1, 16}, 1.0f);
  auto run = [&](uint64_t seed) {
    L0Graph lg({16}, values, 0.0f);
    Executor ex(lg.g, seed);
    ex.set_training(true);
    Tensor first = ex.forward({x}).clone();
    return std::make_pair(first, ex.forward({x}).clone());
  };
  auto [a1, a2] = run(5);
  auto [b1, b2] = run(5);
  auto [c1, c2] = run(6);
  EXPECT_EQ(norm_error(F(a1), std::vector<double>(F(b1), F(b1) + 16)), 0.0);
  EXPECT_EQ(norm_error(F(a2), std::vector<double>(F(b2), F(b2) + 16)), 0.0);
  EXPECT_GT(norm_error(F(a1), std::vector<double>(F(a2), F(a2) + 16)), 0.0) << "each pass draws anew";
  EXPECT_GT(norm_error(F(a1), std::vector<double>(F(c1), F(c1) + 16)), 0.0) << "another seed, other draws";
}

// In training, dx = dy * z and d log_alpha = sum(dy * x) * dz/dlog_alpha for
// the drawn z: (zeta - gamma) s (1 - s) / beta with s = (z - gamma) / (zeta - gamma),
// 0 where z is clamped; plus the penalty's lambda * p (1 - p).
TEST(L0Gate, TrainingGradientUsesTheDrawnGateAndThePenalty) {
  const std::vector<float> values = {-4.0f, -1.5f, -0.5f, 0.0f, 0.7f, 1.5f, 3.0f, 4.0f};
  const int64_t C = 8, N = 3;
  for (float lambda : {0.0f, 0.3f}) {
    SCOPED_TRACE("lambda " + std::to_string(lambda));
    L0Graph lg({C}, values, lambda);
    Executor ex(lg.g, 3);
    ex.set_training(true);
    ex.set_input_grads(true);
    const Tensor x = random_tensor({N, C}, 31), R = random_tensor({N, C}, 32);
    int64_t partial = 0, clamped = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const Tensor y = ex.forward({x}).clone();
      ex.backward(R);
      for (int64_t c = 0; c < C; ++c) {
        const double z = F(y)[c] / F(x)[c];
        double dot = 0;
        for (int64_t n = 0; n < N; ++n) {
          EXPECT_NEAR(F(ex.input_grad(0))[n * C + c], F(R)[n * C + c] * z, 1e-6);
          dot += static_cast<double>(F(R)[n * C + c]) * F(x)[n * C + c];
        }
        const double s = (z + 0.1) / 1.2;
        const bool inside = F(y)[c] != 0.0f && F(y)[c] != F(x)[c];
        partial += inside;
        clamped += !inside;
        const double p = sigmoid(values[c] - (2.0 / 3.0) * std::log(0.1 / 1.1));
        const double expected = (inside ? dot * 1.2 * s * (1 - s) / (2.0 / 3.0) : 0.0) + lambda * p * (1 - p);
        EXPECT_NEAR(F(ex.grad("log_alpha"))[c], expected, 1e-4 * (1 + std::abs(expected))) << "channel " << c;
      }
    }
    EXPECT_GT(partial, 0);
    EXPECT_GT(clamped, 0);
  }
}

// The penalty lambda * sum_c sigmoid(log_alpha_c - beta log(-gamma / zeta)) is
// part of the objective: its value lands in the l0_penalty buffer on a
// training pass, and the gradient of sum(y * R) + penalty matches finite
// differences (eval mode, where y is deterministic).
TEST(L0Gate, PenaltyValueAndGradientReachLogAlpha) {
  Rng rng(8);
  const Tensor alpha0 = make_operand(param("log_alpha", {9}, Fill::L0LogAlpha), rng);
  const std::vector<float> values(F(alpha0), F(alpha0) + 9);
  const float lambda = 0.4f;
  L0Graph lg({9}, values, lambda);
  auto penalty_of = [&](const Tensor& a) {
    double open = 0;
    for (int64_t c = 0; c < 9; ++c) open += sigmoid(F(a)[c] - (2.0 / 3.0) * std::log(0.1 / 1.1));
    return lambda * open;
  };
  const Tensor x = random_tensor({4, 9}, 41), R = random_tensor({4, 9}, 42);
  Executor ex(lg.g);
  ex.set_training(true);
  ex.forward({x});
  EXPECT_NEAR(F(lg.penalty)[0], penalty_of(lg.log_alpha), 1e-5);

  ex.set_training(false);
  ex.forward({x});
  ex.backward(R);
  const Tensor analytic = ex.grad("log_alpha").clone();
  auto objective = [&] {
    const Tensor& y = ex.forward({x});
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data<float>()[i]) * F(R)[i];
    return s + penalty_of(lg.log_alpha);
  };
  std::vector<double> num, ana;
  for (int64_t c = 0; c < 9; ++c) {
    float* a = lg.log_alpha.data<float>();
    const float orig = a[c];
    a[c] = orig + 1e-2f;
    const double hi = objective();
    a[c] = orig - 1e-2f;
    const double lo = objective();
    a[c] = orig;
    num.push_back((hi - lo) / 2e-2);
    ana.push_back(F(analytic)[c]);
  }
  EXPECT_LT(norm_error(ana, num), 1e-3);
  // Without the penalty the gradients differ: the penalty does reach log_alpha.
  lg.weight.fill(0.0f);
  ex.forward({x});
  ex.backward(R);
  EXPECT_GT(max_abs_diff_f(ex.grad("log_alpha"), analytic), 1e-3);
}

TEST(L0Gate, LambdaFromAttributeWithoutBuffer) {
  Graph g;
  Tensor a = Tensor::from_vector({2}, {0.0f, 1.0f});
  int x = g.add_input("x", {2});
  g.set_output(g.add("l0_gate", {x, g.add_param("log_alpha", a)}, {{"l0_weight", 0.5}}));
  Executor ex(g);
  ex.forward({Tensor::zeros({1, 2})});
  ex.backward(Tensor::zeros({1, 2}));  // no data gradient: only the penalty's
  for (int64_t c = 0; c < 2; ++c) {
    const double p = sigmoid(F(a)[c] - (2.0 / 3.0) * std::log(0.1 / 1.1));
    EXPECT_NEAR(F(ex.grad("log_alpha"))[c], 0.5 * p * (1 - p), 1e-6);
  }
}

TEST(L0Gate, CountsNoFlopsAndRejectsBadInput) {
  L0Graph ok({3, 2, 2}, {1.0f, 2.0f, 3.0f}, 0.0f);
  Executor flops(ok.g);
  EXPECT_EQ(flops.flops_per_sample(), 0.0);

  L0Graph wrong_count({4}, {1.0f, 2.0f, 3.0f}, 0.0f);
  Executor ex(wrong_count.g);
  EXPECT_THROW(ex.forward({Tensor::full({2, 4}, 1.0f)}), Error);
  L0Graph wrong_rank({2, 3}, {1.0f, 2.0f}, 0.0f);
  Executor ex2(wrong_rank.g);
  EXPECT_THROW(ex2.forward({Tensor::full({1, 2, 3}, 1.0f)}), Error);
  L0Graph negative({3}, {1.0f, 2.0f, 3.0f}, -1.0f);
  Executor ex3(negative.g);
  ex3.set_training(true);
  EXPECT_THROW(ex3.forward({Tensor::full({2, 3}, 1.0f)}), Error);
  L0Graph nan_alpha({3}, {1.0f, std::nanf(""), 3.0f}, 0.0f);
  Executor ex4(nan_alpha.g);
  EXPECT_THROW(ex4.forward({Tensor::full({2, 3}, 1.0f)}), Error);
  for (json attrs : {json{{"beta", 0.0}}, json{{"gamma", 0.1}}, json{{"zeta", 0.9}}}) {
    L0Graph bad({3}, {1.0f, 2.0f, 3.0f}, 0.0f, attrs);
    Executor ex5(bad.g);
    EXPECT_THROW(ex5.forward({Tensor::full({2, 3}, 1.0f)}), Error) << attrs.dump();
  }
}

// ---------------------------------------------------------------------------
// Block-gated linear: shape and attribute errors
// ---------------------------------------------------------------------------

TEST(BlockGatedLinear, BadShapesAndAttributesThrow) {
  auto run = [](Shape w, Shape b, Shape gw, json attrs) {
    Graph g;
    int x = g.add_input("x", {5});
    g.set_output(g.add("block_gated_linear", {x, g.add_param("w", Tensor::zeros(w)), g.add_param("b", Tensor::zeros(b)),
                                              g.add_param("gw", Tensor::zeros(gw))},
                       attrs));
    Executor ex(g);
    ex.forward({Tensor::zeros({2, 5})});
  };
  EXPECT_NO_THROW(run({8, 5}, {8}, {4, 5}, {{"blocks", 4}, {"top_k", 2}}));
  EXPECT_THROW(run({9, 5}, {9}, {4, 5}, {{"blocks", 4}, {"top_k", 2}}), Error);  // 9 outputs in 4 blocks
  EXPECT_THROW(run({8, 5}, {8}, {4, 5}, {{"blocks", 4}, {"top_k", 5}}), Error);
  EXPECT_THROW(run({8, 5}, {8}, {4, 5}, {{"blocks", 4}, {"top_k", 0}}), Error);
  EXPECT_THROW(run({8, 5}, {8}, {4, 5}, {{"top_k", 1}}), Error);                 // blocks missing
  EXPECT_THROW(run({8, 5}, {8}, {2, 5}, {{"blocks", 4}, {"top_k", 2}}), Error);  // gate_weight rows != blocks
  EXPECT_THROW(run({8, 4}, {8}, {4, 5}, {{"blocks", 4}, {"top_k", 2}}), Error);  // weight columns != features
  EXPECT_THROW(run({8, 5}, {4}, {4, 5}, {{"blocks", 4}, {"top_k", 2}}), Error);  // bias
}

TEST(BlockGatedLinear, FlopsCountTheGateAndTheKeptBlocks) {
  Graph g;
  int x = g.add_input("x", {10});
  g.set_output(g.add("block_gated_linear", {x, g.add_param("w", Tensor::zeros({16, 10})), g.add_param("b", Tensor::zeros({16})),
                                            g.add_param("gw", Tensor::zeros({4, 10}))},
                     {{"blocks", 4}, {"top_k", 1}}));
  Executor ex(g);
  // Gate network 2 * 10 * 4, one block of 4 outputs 2 * 10 * 4.
  EXPECT_DOUBLE_EQ(ex.flops_per_sample(), 2.0 * 10 * 4 + 2.0 * 10 * 4);
}

// ---------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------

struct DropoutGraph {
  Graph g;
  explicit DropoutGraph(Shape sample, double p) {
    int x = g.add_input("x", sample);
    g.set_output(g.add("dropout", {x}, {{"p", p}}));
  }
};

Tensor nonzero_input(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  return make_operand(in("x", s, Fill::AwayFromZero), rng);
}

TEST(Dropout, EvalIsIdentity) {
  DropoutGraph d({50}, 0.5);
  Tensor x = nonzero_input({20, 50}, 1);
  Executor ex(d.g);
  ex.set_training(false);
  const Tensor& y = ex.forward({x});
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.data<float>()[i], F(x)[i]);
}

TEST(Dropout, TrainingKeepsFractionAndScales) {
  for (double p : {0.1, 0.3, 0.5}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    DropoutGraph d({200}, p);
    Tensor x = nonzero_input({500, 200}, 2);
    Executor ex(d.g, 17);
    ex.set_training(true);
    ex.set_input_grads(true);
    const Tensor& y = ex.forward({x});
    const float scale = 1.0f / (1.0f - static_cast<float>(p));
    int64_t kept = 0;
    std::vector<uint8_t> mask(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float yi = y.data<float>()[i];
      if (yi != 0.0f) {
        ++kept;
        mask[i] = 1;
        ASSERT_NEAR(yi, F(x)[i] * scale, 1e-6 * std::fabs(F(x)[i] * scale)) << "element " << i;
      }
    }
    const double frac = static_cast<double>(kept) / x.numel();
    // sd of the kept fraction is sqrt(p(1-p)/1e5) < 0.0016; allow ~6 sd.
    EXPECT_NEAR(frac, 1.0 - p, 0.01);

    // backward applies the forward's mask and scale.
    Tensor dy = random_tensor(x.shape(), 3);
    ex.backward(dy);
    const Tensor& dx = ex.input_grad(0);
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_FLOAT_EQ(dx.data<float>()[i], mask[i] ? dy.data<float>()[i] * scale : 0.0f) << "element " << i;

    // The next step draws a different mask.
    const Tensor& y2 = ex.forward({x});
    int64_t differ = 0;
    for (int64_t i = 0; i < x.numel(); ++i) differ += (y2.data<float>()[i] != 0.0f) != (mask[i] != 0);
    EXPECT_GT(differ, 0);
  }
}

TEST(Dropout, SameSeedSameMask) {
  DropoutGraph d({64}, 0.5);
  Tensor x = nonzero_input({32, 64}, 4);
  Executor a(d.g, 42), b(d.g, 42), c(d.g, 43);
  for (Executor* e : {&a, &b, &c}) e->set_training(true);
  for (int step = 0; step < 2; ++step) {
    Tensor ya = a.forward({x}).clone();
    Tensor yb = b.forward({x}).clone();
    Tensor yc = c.forward({x}).clone();
    int64_t same_ab = 0, same_ac = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      same_ab += ya.data<float>()[i] == yb.data<float>()[i];
      same_ac += ya.data<float>()[i] == yc.data<float>()[i];
    }
    EXPECT_EQ(same_ab, x.numel()) << "step " << step;
    EXPECT_LT(same_ac, x.numel()) << "step " << step;
  }
}

TEST(Dropout, PZeroIsIdentityInTraining) {
  DropoutGraph d({10}, 0.0);
  Tensor x = nonzero_input({4, 10}, 5);
  Executor ex(d.g);
  ex.set_training(true);
  const Tensor& y = ex.forward({x});
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.data<float>()[i], F(x)[i]);
}

// ---------------------------------------------------------------------------
// Cross-entropy labels
// ---------------------------------------------------------------------------

Tensor labels_tensor(std::vector<int64_t> v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

struct CeGraph {
  Graph g;
  CeGraph(int64_t classes, double smoothing = 0.0) {
    int x = g.add_input("logits", {classes});
    int y = g.add_input("labels", {}, DType::i64);
    g.set_output(g.add("cross_entropy", {x, y}, {{"label_smoothing", smoothing}}));
  }
};

TEST(CrossEntropy, LabelOutOfRangeThrows) {
  CeGraph ce(5);
  Executor ex(ce.g);
  Tensor x = random_tensor({3, 5}, 1);
  EXPECT_NO_THROW(ex.forward({x, labels_tensor({0, 4, 2})}));
  for (int64_t bad : {5, 100, -1}) {
    try {
      ex.forward({x, labels_tensor({0, bad, 2})});
      ADD_FAILURE() << "label " << bad << " did not throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

TEST(CrossEntropy, LabelsMustBeI64) {
  CeGraph ce(5);
  Executor ex(ce.g);
  Tensor x = random_tensor({3, 5}, 1);
  Tensor f32_labels = Tensor::zeros({3});
  EXPECT_THROW(ex.forward({x, f32_labels}), Error);
}

TEST(CrossEntropy, InvalidSmoothingThrows) {
  Graph g;
  int x = g.add_input("logits", {3});
  int y = g.add_input("labels", {}, DType::i64);
  g.set_output(g.add("cross_entropy", {x, y}, {{"label_smoothing", 1.0}}));
  Executor ex(g);
  EXPECT_THROW(ex.forward({random_tensor({2, 3}, 1), labels_tensor({0, 1})}), Error);
}

TEST(CrossEntropy, LossIsNonNegativeAndSmoothingRaisesConfidentLoss) {
  // Perfectly confident, correct logits: loss ~ 0 without smoothing, > 0 with.
  Tensor x = Tensor::zeros({2, 4});
  x.data<float>()[1] = 30.0f;
  x.data<float>()[4 + 3] = 30.0f;
  Tensor l = labels_tensor({1, 3});
  CeGraph plain(4), smooth(4, 0.1);
  Executor a(plain.g), b(smooth.g);
  EXPECT_NEAR(a.forward({x, l}).data<float>()[0], 0.0, 1e-6);
  EXPECT_GT(b.forward({x, l}).data<float>()[0], 1.0);
}

// ---------------------------------------------------------------------------
// Loss weights and soft targets
// ---------------------------------------------------------------------------

// cross_entropy(logits, labels[, weights]) or soft_cross_entropy(logits, targets[, weights]),
// every operand a graph input; input_grad(0) is d(loss)/d(logits).
struct LossGraph {
  Graph g;
  LossGraph(const std::string& op, int64_t classes, bool weighted) {
    std::vector<int> ids = {g.add_input("logits", {classes})};
    ids.push_back(op == "cross_entropy" ? g.add_input("labels", {}, DType::i64) : g.add_input("targets", {classes}));
    if (weighted) ids.push_back(g.add_input("weights", {}));
    g.set_output(g.add(op, ids));
  }
};

struct LossResult {
  float loss;
  Tensor dlogits;
};

LossResult run_loss(LossGraph& lg, const std::vector<Tensor>& inputs) {
  Executor ex(lg.g);
  ex.set_training(true);
  ex.set_input_grads(true);
  const float loss = ex.forward(inputs).data<float>()[0];
  ex.backward();
  return {loss, ex.input_grad(0).clone()};
}

Tensor one_hot(const Tensor& labels, int64_t classes) {
  Tensor t = Tensor::zeros({labels.numel(), classes});
  for (int64_t r = 0; r < labels.numel(); ++r) t.data<float>()[r * classes + labels.data<int64_t>()[r]] = 1.0f;
  return t;
}

// Rows `keep` of a [N, ...] tensor (any dtype), as a new tensor.
Tensor take_rows(const Tensor& t, const std::vector<int64_t>& keep) {
  Shape s = t.shape();
  s[0] = static_cast<int64_t>(keep.size());
  Tensor out = Tensor::empty(s, t.dtype());
  const size_t row_bytes = t.nbytes() / t.dim(0);
  for (size_t i = 0; i < keep.size(); ++i)
    std::memcpy(static_cast<char*>(out.raw()) + i * row_bytes, static_cast<const char*>(t.raw()) + keep[i] * row_bytes, row_bytes);
  return out;
}

TEST(LossWeights, OnesEqualUnweighted) {
  const Tensor x = random_tensor({5, 4}, 1), labels = labels_tensor({0, 3, 1, 1, 2});
  Rng rng(2);
  const Tensor soft = make_operand(in("t", {5, 4}, Fill::Simplex), rng);
  for (const std::string op : {"cross_entropy", "soft_cross_entropy"}) {
    SCOPED_TRACE(op);
    const Tensor& target = op == "cross_entropy" ? labels : soft;
    LossGraph plain(op, 4, false), weighted(op, 4, true);
    const LossResult a = run_loss(plain, {x, target});
    const LossResult b = run_loss(weighted, {x, target, Tensor::full({5}, 1.0f)});
    EXPECT_FLOAT_EQ(a.loss, b.loss);
    for (int64_t i = 0; i < x.numel(); ++i) EXPECT_FLOAT_EQ(a.dlogits.data<float>()[i], b.dlogits.data<float>()[i]) << i;
  }
}

TEST(LossWeights, ZeroWeightRemovesRow) {
  // Weights (1, 0, 1, 1): the loss is (l0 + l2 + l3) / 4, i.e. the unweighted
  // loss of rows {0, 2, 3} times 3/4; row 1's gradient is zero, the others'
  // are those of the 3-row batch times 3/4.
  const Tensor x = random_tensor({4, 3}, 3), labels = labels_tensor({2, 0, 1, 2});
  Rng rng(4);
  const Tensor soft = make_operand(in("t", {4, 3}, Fill::Simplex), rng);
  const Tensor w = Tensor::from_vector({4}, {1, 0, 1, 1});
  const std::vector<int64_t> kept = {0, 2, 3};
  for (const std::string op : {"cross_entropy", "soft_cross_entropy"}) {
    SCOPED_TRACE(op);
    const Tensor& target = op == "cross_entropy" ? labels : soft;
    LossGraph plain(op, 3, false), weighted(op, 3, true);
    const LossResult full = run_loss(weighted, {x, target, w});
    const LossResult sub = run_loss(plain, {take_rows(x, kept), take_rows(target, kept)});
    EXPECT_NEAR(full.loss, sub.loss * 0.75f, 1e-6);
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(full.dlogits.data<float>()[1 * 3 + c], 0.0f);
    for (size_t k = 0; k < kept.size(); ++k)
      for (int64_t c = 0; c < 3; ++c)
        EXPECT_NEAR(full.dlogits.data<float>()[kept[k] * 3 + c], 0.75f * sub.dlogits.data<float>()[k * 3 + c], 1e-7);
    // Row 1's logits no longer matter.
    Tensor x2 = x.clone();
    x2.data<float>()[3] += 5.0f;
    EXPECT_FLOAT_EQ(run_loss(weighted, {x2, target, w}).loss, full.loss);
  }
}

TEST(LossWeights, BadWeightsThrow) {
  const Tensor x = random_tensor({3, 4}, 5), labels = labels_tensor({0, 1, 2});
  const Tensor soft = one_hot(labels, 4);
  for (const std::string op : {"cross_entropy", "soft_cross_entropy"}) {
    SCOPED_TRACE(op);
    LossGraph lg(op, 4, true);
    Executor ex(lg.g);
    const Tensor& target = op == "cross_entropy" ? labels : soft;
    for (float bad : {-0.5f, NAN, INFINITY}) {
      try {
        ex.forward({x, target, Tensor::from_vector({3}, {1.0f, bad, 1.0f})});
        ADD_FAILURE() << "weight " << bad << " did not throw";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(SoftCrossEntropy, OneHotTargetsEqualCrossEntropy) {
  const Tensor x = random_tensor({4, 5}, 6), labels = labels_tensor({4, 0, 2, 2});
  const Tensor w = Tensor::from_vector({4}, {0.5f, 2.0f, 1.0f, 0.0f});
  LossGraph hard("cross_entropy", 5, true), soft("soft_cross_entropy", 5, true);
  const LossResult a = run_loss(hard, {x, labels, w});
  const LossResult b = run_loss(soft, {x, one_hot(labels, 5), w});
  EXPECT_NEAR(a.loss, b.loss, 1e-6);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(a.dlogits.data<float>()[i], b.dlogits.data<float>()[i], 1e-7) << i;
}

TEST(SoftCrossEntropy, BadTargetsThrow) {
  const Tensor x = random_tensor({2, 3}, 7);
  LossGraph lg("soft_cross_entropy", 3, false);
  Executor ex(lg.g);
  for (float bad : {-0.1f, NAN, INFINITY}) {
    try {
      ex.forward({x, Tensor::from_vector({2, 3}, {1, 0, 0, 0.5f, bad, 0.5f})});
      ADD_FAILURE() << "target " << bad << " did not throw";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("row 1, class 1"), std::string::npos) << msg;
      EXPECT_NE(msg.find("finite and >= 0"), std::string::npos) << msg;
    }
  }
}

// ---------------------------------------------------------------------------
// Shape errors: leanai::Error with a message naming the problem, not a crash
// ---------------------------------------------------------------------------

// Builds a graph with `make`, runs forward on `inputs`, expects an Error whose
// message contains every string in `needles`.
void expect_shape_error(const std::function<void(Graph&)>& make, const std::vector<Tensor>& inputs,
                        const std::vector<std::string>& needles) {
  Graph g;
  make(g);
  try {
    Executor ex(g);
    ex.set_training(true);
    ex.forward(inputs);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(ShapeErrors, LinearFeatureMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {5});
        int w = g.add_param("w", Tensor::zeros({4, 6}));
        g.set_output(g.add("linear", {x, w}));
      },
      {Tensor::zeros({2, 5})}, {"linear", "5 features", "6"});
}

TEST(ShapeErrors, LinearBiasMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {5});
        int w = g.add_param("w", Tensor::zeros({4, 5}));
        int b = g.add_param("b", Tensor::zeros({3}));
        g.set_output(g.add("linear", {x, w, b}));
      },
      {Tensor::zeros({2, 5})}, {"linear", "bias", "[4]"});
}

TEST(ShapeErrors, LinearWeightRank) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {5});
        int w = g.add_param("w", Tensor::zeros({4, 5, 1}));
        g.set_output(g.add("linear", {x, w}));
      },
      {Tensor::zeros({2, 5})}, {"linear", "weight"});
}

TEST(ShapeErrors, Conv2dChannelMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 8, 8});
        int w = g.add_param("w", Tensor::zeros({4, 2, 3, 3}));
        g.set_output(g.add("conv2d", {x, w}));
      },
      {Tensor::zeros({1, 3, 8, 8})}, {"conv2d", "3 channels", "expects 2"});
}

TEST(ShapeErrors, Conv2dGroupsDoNotDivide) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 8, 8});
        int w = g.add_param("w", Tensor::zeros({4, 1, 3, 3}));
        g.set_output(g.add("conv2d", {x, w}, {{"groups", 2}}));
      },
      {Tensor::zeros({1, 3, 8, 8})}, {"conv2d", "groups"});
}

TEST(ShapeErrors, Conv2dKernelLargerThanInput) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {1, 2, 2});
        int w = g.add_param("w", Tensor::zeros({1, 1, 3, 3}));
        g.set_output(g.add("conv2d", {x, w}));
      },
      {Tensor::zeros({1, 1, 2, 2})}, {"conv2d", "larger"});
}

TEST(ShapeErrors, Conv2dWrongRank) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 8});
        int w = g.add_param("w", Tensor::zeros({4, 3, 3, 3}));
        g.set_output(g.add("conv2d", {x, w}));
      },
      {Tensor::zeros({1, 3, 8})}, {"conv2d", "[N, C, H, W]"});
}

TEST(ShapeErrors, Conv2dBadBias) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 8, 8});
        int w = g.add_param("w", Tensor::zeros({4, 3, 3, 3}));
        int b = g.add_param("b", Tensor::zeros({3}));
        g.set_output(g.add("conv2d", {x, w, b}));
      },
      {Tensor::zeros({1, 3, 8, 8})}, {"conv2d", "bias"});
}

TEST(ShapeErrors, MatmulInnerMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {4});
        int b = g.add_param("b", Tensor::zeros({5, 3}));
        g.set_output(g.add("matmul", {a, b}));
      },
      {Tensor::zeros({2, 4})}, {"matmul", "inner"});
}

TEST(ShapeErrors, MatmulBatchMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 4});
        int b = g.add_input("b", {4, 5});
        g.set_output(g.add("matmul", {a, b}));
      },
      {Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 5})}, {"matmul", "batch"});
}

TEST(ShapeErrors, AddDoesNotBroadcast) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3});
        int b = g.add_param("b", Tensor::zeros({4}));
        g.set_output(g.add("add", {a, b}));
      },
      {Tensor::zeros({2, 3})}, {"add", "broadcast"});
}

TEST(ShapeErrors, MulDoesNotBroadcast) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 4});
        int b = g.add_param("b", Tensor::zeros({2, 4}));
        g.set_output(g.add("mul", {a, b}));
      },
      {Tensor::zeros({2, 3, 4})}, {"mul", "broadcast"});
}

TEST(ShapeErrors, SubDoesNotBroadcast) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3});
        int b = g.add_param("b", Tensor::zeros({4}));
        g.set_output(g.add("sub", {a, b}));
      },
      {Tensor::zeros({2, 3})}, {"sub", "broadcast"});
}

TEST(ShapeErrors, DivDoesNotBroadcast) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 4});
        int b = g.add_param("b", Tensor::full({2, 4}, 1.0f));
        g.set_output(g.add("div", {a, b}));
      },
      {Tensor::zeros({2, 3, 4})}, {"div", "broadcast"});
}

TEST(ShapeErrors, TransposePermRank) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 4});
        g.set_output(g.add("transpose", {a}, {{"perm", {1, 0}}}));
      },
      {Tensor::zeros({2, 3, 4})}, {"transpose", "rank 3"});
}

TEST(ShapeErrors, TransposeNotAPermutation) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 4});
        g.set_output(g.add("transpose", {a}, {{"perm", {0, 1, 1}}}));
      },
      {Tensor::zeros({2, 3, 4})}, {"transpose", "permutation"});
}

TEST(ShapeErrors, ClipMinAboveMax) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3});
        g.set_output(g.add("clip", {a}, {{"min", 1.0}, {"max", -1.0}}));
      },
      {Tensor::zeros({2, 3})}, {"clip", "min must be <= max"});
}

TEST(ShapeErrors, BatchNormStatsShape) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 4, 4});
        int ga = g.add_param("g", Tensor::zeros({3}));
        int be = g.add_param("b", Tensor::zeros({3}));
        int m = g.add_param("m", Tensor::zeros({4}), false);
        int v = g.add_param("v", Tensor::zeros({3}), false);
        g.set_output(g.add("batchnorm", {x, ga, be, m, v}));
      },
      {Tensor::zeros({2, 3, 4, 4})}, {"batchnorm", "[3]", "[4]"});
}

TEST(ShapeErrors, BatchNormTrainingBatchOne) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3});
        int ga = g.add_param("g", Tensor::zeros({3}));
        int be = g.add_param("b", Tensor::zeros({3}));
        int m = g.add_param("m", Tensor::zeros({3}), false);
        int v = g.add_param("v", Tensor::zeros({3}), false);
        g.set_output(g.add("batchnorm", {x, ga, be, m, v}));
      },
      {Tensor::zeros({1, 3})}, {"batchnorm", "batch size"});
}

TEST(ShapeErrors, LayerNormGammaShape) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {6});
        int ga = g.add_param("g", Tensor::zeros({5}));
        int be = g.add_param("b", Tensor::zeros({6}));
        g.set_output(g.add("layernorm", {x, ga, be}));
      },
      {Tensor::zeros({2, 6})}, {"layernorm", "[6]"});
}

TEST(ShapeErrors, PoolWindowLargerThanInput) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {1, 2, 2});
        g.set_output(g.add("maxpool2d", {x}, {{"kernel", 3}}));
      },
      {Tensor::zeros({1, 1, 2, 2})}, {"maxpool2d", "larger"});
}

TEST(ShapeErrors, PoolWrongRank) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {4, 4});
        g.set_output(g.add("avgpool2d", {x}, {{"kernel", 2}}));
      },
      {Tensor::zeros({1, 4, 4})}, {"avgpool2d", "[N, C, H, W]"});
}

TEST(ShapeErrors, ReshapeWrongCount) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3, 4});
        g.set_output(g.add("reshape", {x}, {{"shape", {0, 5}}}));
      },
      {Tensor::zeros({2, 3, 4})}, {"reshape", "[2, 3, 4]"});
}

TEST(ShapeErrors, ConcatMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3, 2});
        int b = g.add_input("b", {4, 3});
        g.set_output(g.add("concat", {a, b}, {{"axis", 1}}));
      },
      {Tensor::zeros({2, 3, 2}), Tensor::zeros({2, 4, 3})}, {"concat", "outside axis 1"});
}

TEST(ShapeErrors, SoftmaxAxisOutOfRange) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {3});
        g.set_output(g.add("softmax", {x}, {{"axis", 2}}));
      },
      {Tensor::zeros({2, 3})}, {"softmax", "axis"});
}

TEST(ShapeErrors, CrossEntropyLabelCount) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("logits", {5});
        int y = g.add_param("labels_as_param", Tensor::zeros({3}));
        g.set_output(g.add("cross_entropy", {x, y}));
      },
      {Tensor::zeros({4, 5})}, {"cross_entropy", "labels [4]"});
}

TEST(ShapeErrors, CrossEntropyWeightCount) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("logits", {5});
        int y = g.add_input("labels", {}, DType::i64);
        int w = g.add_param("w", Tensor::full({3}, 1.0f), false);
        g.set_output(g.add("cross_entropy", {x, y, w}));
      },
      {Tensor::zeros({4, 5}), labels_tensor({0, 1, 2, 3})}, {"cross_entropy", "weights [4]", "[3]"});
}

TEST(ShapeErrors, SoftCrossEntropyTargetShape) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("logits", {5});
        int t = g.add_input("targets", {4});
        g.set_output(g.add("soft_cross_entropy", {x, t}));
      },
      {Tensor::zeros({2, 5}), Tensor::zeros({2, 4})}, {"soft_cross_entropy", "targets [2, 5]", "[2, 4]"});
}

TEST(ShapeErrors, SoftCrossEntropyWeightCount) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("logits", {5});
        int t = g.add_input("targets", {5});
        int w = g.add_param("w", Tensor::full({3}, 1.0f), false);
        g.set_output(g.add("soft_cross_entropy", {x, t, w}));
      },
      {Tensor::zeros({2, 5}), Tensor::zeros({2, 5})}, {"soft_cross_entropy", "weights [2]"});
}

TEST(ShapeErrors, MseShapeMismatch) {
  expect_shape_error(
      [](Graph& g) {
        int a = g.add_input("a", {3});
        int b = g.add_input("b", {4});
        g.set_output(g.add("mse", {a, b}));
      },
      {Tensor::zeros({2, 3}), Tensor::zeros({2, 4})}, {"mse", "[2, 3]", "[2, 4]"});
}

TEST(ShapeErrors, ErrorNamesTheNode) {
  expect_shape_error(
      [](Graph& g) {
        int x = g.add_input("x", {5});
        int w = g.add_param("w", Tensor::zeros({4, 6}));
        g.set_output(g.add("linear", {x, w}, {}, "fc1"));
      },
      {Tensor::zeros({2, 5})}, {"node 2", "linear", "fc1"});
}

TEST(ShapeErrors, InputShapeAndCount) {
  Graph g;
  int x = g.add_input("x", {5});
  int w = g.add_param("w", Tensor::zeros({4, 5}));
  g.set_output(g.add("linear", {x, w}));
  Executor ex(g);
  try {
    ex.forward({Tensor::zeros({2, 6})});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 6]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ex.forward({}), Error);
  EXPECT_THROW(ex.forward({Tensor::zeros({2, 5}), Tensor::zeros({2, 5})}), Error);
  EXPECT_THROW(ex.forward({Tensor::zeros({2, 5}, DType::i64)}), Error);
  // Still usable afterwards.
  EXPECT_NO_THROW(ex.forward({Tensor::zeros({2, 5})}));
}

TEST(ShapeErrors, BadAttributes) {
  Graph g;
  int x = g.add_input("x", {3, 8, 8});
  int w = g.add_param("w", Tensor::zeros({4, 3, 3, 3}));
  g.set_output(g.add("conv2d", {x, w}, {{"stride", 0}}));
  Executor ex(g);
  EXPECT_THROW(ex.forward({Tensor::zeros({1, 3, 8, 8})}), Error);

  Graph g2;
  int x2 = g2.add_input("x", {3, 8, 8});
  g2.set_output(g2.add("maxpool2d", {x2}, {{"kernel", "two"}}));
  Executor ex2(g2);
  EXPECT_THROW(ex2.forward({Tensor::zeros({1, 3, 8, 8})}), Error);

  Graph g3;
  int x3 = g3.add_input("x", {3});
  EXPECT_THROW(g3.add("linear", {x3}), Error);          // too few inputs
  EXPECT_THROW(g3.add("no_such_op", {x3}), Error);      // unknown op
  EXPECT_THROW(g3.add("relu", {x3 + 5}), Error);        // input node does not exist
}

TEST(ShapeErrors, BackwardDoutShape) {
  Graph g;
  int x = g.add_input("x", {5});
  int w = g.add_param("w", Tensor::zeros({4, 5}));
  g.set_output(g.add("linear", {x, w}));
  Executor ex(g);
  ex.set_training(true);
  EXPECT_THROW(ex.backward(Tensor::zeros({2, 4})), Error);  // before forward
  ex.forward({Tensor::zeros({2, 5})});
  EXPECT_THROW(ex.backward(Tensor::zeros({2, 5})), Error);
  EXPECT_THROW(ex.backward(), Error);  // output is not a single element
  EXPECT_NO_THROW(ex.backward(Tensor::zeros({2, 4})));
}

// ---------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------

TEST(Executor, ValueReadTwiceAccumulatesGradient) {
  // y = x * x + x  ->  dy/dx = 2x + 1
  Graph g;
  int x = g.add_input("x", {6});
  int sq = g.add("mul", {x, x});
  g.set_output(g.add("add", {sq, x}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  Tensor xv = random_tensor({3, 6}, 1), R = random_tensor({3, 6}, 2);
  const Tensor& y = ex.forward({xv});
  for (int64_t i = 0; i < xv.numel(); ++i) EXPECT_FLOAT_EQ(y.data<float>()[i], F(xv)[i] * F(xv)[i] + F(xv)[i]);
  for (int rep = 0; rep < 2; ++rep) {  // a second backward does not add onto the first
    ex.backward(R);
    const Tensor& dx = ex.input_grad(0);
    for (int64_t i = 0; i < xv.numel(); ++i)
      EXPECT_NEAR(dx.data<float>()[i], F(R)[i] * (2 * F(xv)[i] + 1), 1e-5) << "rep " << rep << " element " << i;
  }
}

TEST(Executor, ParameterReadTwiceAccumulatesGradient) {
  // y = x * p + p with p [4] broadcast over the batch: dp = sum_b R * (x + 1)
  Graph g;
  int x = g.add_input("x", {4});
  int p = g.add_param("p", random_tensor({4}, 3));
  int xp = g.add("mul", {x, p});
  g.set_output(g.add("add", {xp, p}));
  Executor ex(g);
  ex.set_training(true);
  Tensor xv = random_tensor({3, 4}, 1), R = random_tensor({3, 4}, 2);
  ex.forward({xv});
  ex.backward(R);
  for (int j = 0; j < 4; ++j) {
    double expect = 0;
    for (int b = 0; b < 3; ++b) expect += F(R)[b * 4 + j] * (F(xv)[b * 4 + j] + 1.0);
    EXPECT_NEAR(ex.grad("p").data<float>()[j], expect, 1e-5);
  }
}

TEST(Executor, DiamondGraphAccumulates) {
  // h = linear(x); y = relu(h) + tanh(h): two paths from h, three reads of x's chain.
  Graph g;
  int x = g.add_input("x", {3});
  int w = g.add_param("w", random_tensor({4, 3}, 5));
  int h = g.add("linear", {x, w});
  int a = g.add("relu", {h});
  int t = g.add("tanh", {h});
  g.set_output(g.add("add", {a, t}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  Tensor xv = random_tensor({2, 3}, 6), R = random_tensor({2, 4}, 7);
  ex.forward({xv});
  ex.backward(R);
  // dh = R * (1[h>0] + 1 - tanh(h)^2); dW = dh^T x; dx = dh W
  const float* W = F(g.param("w").value);
  std::vector<double> dh(8);
  for (int b = 0; b < 2; ++b)
    for (int o = 0; o < 4; ++o) {
      double hv = 0;
      for (int i = 0; i < 3; ++i) hv += F(xv)[b * 3 + i] * W[o * 3 + i];
      dh[b * 4 + o] = F(R)[b * 4 + o] * ((hv > 0 ? 1 : 0) + 1 - std::tanh(hv) * std::tanh(hv));
    }
  for (int o = 0; o < 4; ++o)
    for (int i = 0; i < 3; ++i) {
      double e = 0;
      for (int b = 0; b < 2; ++b) e += dh[b * 4 + o] * F(xv)[b * 3 + i];
      EXPECT_NEAR(ex.grad("w").data<float>()[o * 3 + i], e, 1e-5);
    }
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i) {
      double e = 0;
      for (int o = 0; o < 4; ++o) e += dh[b * 4 + o] * W[o * 3 + i];
      EXPECT_NEAR(ex.input_grad(0).data<float>()[b * 3 + i], e, 1e-5);
    }
}

TEST(Executor, ValueReadTwiceByOneOpAfterAnotherRead) {
  // out = x @ x + x: the add writes x's gradient first, then the matmul reads x
  // twice with different gradients (g x^T and x^T g); both must be added.
  Graph g;
  int x = g.add_input("x", {3, 3});
  int m = g.add("matmul", {x, x});
  g.set_output(g.add("add", {m, x}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  std::vector<Tensor> inputs = {random_tensor({2, 3, 3}, 1)};
  check_gradients(ex, inputs, all_targets(g, inputs), 1e-2f, 1e-2, "x@x+x");
}

TEST(Executor, ValueReadThreeTimesByOneOp) {
  // out = concat(x, x, x): dx = R[:, 0:3] + R[:, 3:6] + R[:, 6:9].
  Graph g;
  int x = g.add_input("x", {3});
  g.set_output(g.add("concat", {x, x, x}, {{"axis", 1}}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  Tensor xv = random_tensor({2, 3}, 1), R = random_tensor({2, 9}, 2);
  ex.forward({xv});
  ex.backward(R);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(ex.input_grad(0).data<float>()[b * 3 + i], F(R)[b * 9 + i] + F(R)[b * 9 + 3 + i] + F(R)[b * 9 + 6 + i], 1e-6);
}

TEST(Executor, LargeValueReadTwiceAccumulates) {
  // Same as x * x + x, big enough for the parallel accumulation path.
  Graph g;
  int x = g.add_input("x", {256});
  int sq = g.add("mul", {x, x});
  g.set_output(g.add("add", {sq, x}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  Tensor xv = random_tensor({300, 256}, 1), R = random_tensor({300, 256}, 2);
  ex.forward({xv});
  ex.backward(R);
  double err = 0;
  for (int64_t i = 0; i < xv.numel(); ++i)
    err = std::max(err, std::fabs(ex.input_grad(0).data<float>()[i] - F(R)[i] * (2.0 * F(xv)[i] + 1)));
  EXPECT_LT(err, 1e-4);
}

TEST(Executor, SharedWeightTwoLayers) {
  // y = W tanh(W x + b1) + b2 with one W for both layers.
  Graph g;
  int x = g.add_input("x", {4});
  int w = g.add_param("w", random_tensor({4, 4}, 1));
  int b1 = g.add_param("b1", random_tensor({4}, 2));
  int b2 = g.add_param("b2", random_tensor({4}, 3));
  int h = g.add("tanh", {g.add("linear", {x, w, b1})});
  g.set_output(g.add("linear", {h, w, b2}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  std::vector<Tensor> inputs = {random_tensor({3, 4}, 4)};
  check_gradients(ex, inputs, all_targets(g, inputs), 1e-2f, 1e-2, "shared_weight");
}

TEST(Executor, SmallCnnEndToEndGradient) {
  // conv -> batchnorm -> gelu -> avgpool -> flatten -> linear -> cross_entropy,
  // with smooth ops only so finite differences are reliable.
  Graph g;
  int x = g.add_input("x", {2, 6, 6});
  int labels = g.add_input("labels", {}, DType::i64);
  // (no conv bias: batch norm cancels it, so its gradient is exactly zero)
  int cw = g.add_param("conv.weight", random_tensor({4, 2, 3, 3}, 1));
  int bg = g.add_param("bn.weight", Tensor::full({4}, 1.0f));
  int bb = g.add_param("bn.bias", Tensor::zeros({4}));
  int rm = g.add_param("bn.running_mean", Tensor::zeros({4}), false);
  int rv = g.add_param("bn.running_var", Tensor::full({4}, 1.0f), false);
  int c = g.add("conv2d", {x, cw}, {{"padding", 1}});
  int n = g.add("batchnorm", {c, bg, bb, rm, rv});
  int a = g.add("gelu", {n});
  int p = g.add("avgpool2d", {a}, {{"kernel", 2}});
  int f = g.add("flatten", {p});
  int lw = g.add_param("fc.weight", random_tensor({5, 36}, 3));
  int lb = g.add_param("fc.bias", random_tensor({5}, 4));
  int l = g.add("linear", {f, lw, lb});
  g.set_output(g.add("cross_entropy", {l, labels}, {{"label_smoothing", 0.1}}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  std::vector<Tensor> inputs = {random_tensor({3, 2, 6, 6}, 5), labels_tensor({0, 3, 4})};
  check_gradients(ex, inputs, all_targets(g, inputs), 1e-2f, 1e-2, "small_cnn", 24);
}

TEST(Executor, ResidualLayerNormGradient) {
  // y = layernorm(x + softmax(x @ W) ) * ... : a residual block with matmul, softmax, layernorm.
  Graph g;
  int x = g.add_input("x", {3, 4});
  int w = g.add_param("w", random_tensor({4, 4}, 1));
  int gam = g.add_param("ln.weight", random_tensor({4}, 2));
  int bet = g.add_param("ln.bias", random_tensor({4}, 3));
  int s = g.add("softmax", {g.add("matmul", {x, w})});
  int r = g.add("add", {x, s});
  g.set_output(g.add("layernorm", {r, gam, bet}));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  std::vector<Tensor> inputs = {random_tensor({2, 3, 4}, 4)};
  check_gradients(ex, inputs, all_targets(g, inputs), 1e-2f, 1e-2, "residual_layernorm");
}

// Kernels must cope with any subset of their inputs needing a gradient
// (a first layer has no input gradient; frozen weights have none either).
struct PartialCase {
  std::string name;
  bool input_grads;
  std::vector<bool> trainable;  // per parameter, in the order the graph adds them
};

class PartialGrad : public testing::TestWithParam<PartialCase> {};

void run_partial(const std::string& op, const std::vector<Shape>& param_shapes, const Shape& x_shape, json attrs,
                 const PartialCase& pc, int buffers = 0) {
  Graph g;
  int x = g.add_input("x", Shape(x_shape.begin() + 1, x_shape.end()));
  std::vector<int> ids = {x};
  for (size_t i = 0; i < param_shapes.size(); ++i)
    ids.push_back(g.add_param("p" + std::to_string(i), i < param_shapes.size() - buffers ? random_tensor(param_shapes[i], 10 + i)
                                                                                     : Tensor::full(param_shapes[i], 1.0f),
                              i < pc.trainable.size() ? static_cast<bool>(pc.trainable[i]) : false));
  g.set_output(g.add(op, ids, attrs));
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(pc.input_grads);
  std::vector<Tensor> inputs = {random_tensor(x_shape, 3)};
  std::vector<GradTarget> targets = all_targets(g, inputs, pc.input_grads);
  if (targets.empty()) return;
  check_gradients(ex, inputs, targets, 1e-2f, 1e-2, op + "/" + pc.name);
}

TEST_P(PartialGrad, Conv2d) {
  run_partial("conv2d", {{8, 4, 3, 3}, {8}}, {2, 4, 5, 5}, {{"padding", 1}}, GetParam());
}
TEST_P(PartialGrad, Conv2dBlocked) {
  run_partial("conv2d", {{16, 16, 3, 3}, {16}}, {2, 16, 5, 5}, {{"padding", 1}}, GetParam());
}
TEST_P(PartialGrad, Linear) { run_partial("linear", {{4, 5}, {4}}, {3, 5}, {}, GetParam()); }
TEST_P(PartialGrad, BatchNorm) {
  run_partial("batchnorm", {{3}, {3}, {3}, {3}}, {4, 3, 2, 2}, {}, GetParam(), 2);
}
TEST_P(PartialGrad, LayerNorm) { run_partial("layernorm", {{6}, {6}}, {3, 6}, {}, GetParam()); }
TEST_P(PartialGrad, MulBroadcast) { run_partial("mul", {{3, 1, 1}}, {2, 3, 2, 2}, {}, GetParam()); }
// The gate weight (third parameter) stays frozen: the cases name two trainable flags.
TEST_P(PartialGrad, BlockGatedLinear) {
  run_partial("block_gated_linear", {{8, 5}, {8}, {4, 5}}, {3, 5}, {{"blocks", 4}, {"top_k", 2}}, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Executor, PartialGrad,
                         testing::Values(PartialCase{"all", true, {true, true}},
                                         PartialCase{"params_only", false, {true, true}},
                                         PartialCase{"input_and_first", true, {true, false}},
                                         PartialCase{"input_and_second", true, {false, true}},
                                         PartialCase{"first_only", false, {true, false}},
                                         PartialCase{"second_only", false, {false, true}},
                                         PartialCase{"input_only", true, {false, false}}),
                         [](const testing::TestParamInfo<PartialCase>& i) { return i.param.name; });

TEST(Executor, UnusedTrainableParameterGetsZeroGradient) {
  Graph g;
  int x = g.add_input("x", {3});
  int w = g.add_param("w", random_tensor({2, 3}, 1));
  g.add_param("unused", random_tensor({5}, 2));            // read by nothing
  int side = g.add_param("side", random_tensor({2, 3}, 3));  // read by a branch the output does not reach
  g.add("linear", {x, side});
  g.set_output(g.add("linear", {x, w}));
  Executor ex(g);
  ex.set_training(true);
  ex.grad("unused").fill(7.0f);  // stale values must be overwritten
  ex.grad("side").fill(7.0f);
  ex.forward({random_tensor({4, 3}, 4)});
  ex.backward(random_tensor({4, 2}, 5));
  for (const char* name : {"unused", "side"})
    for (int64_t i = 0; i < ex.grad(name).numel(); ++i) EXPECT_EQ(ex.grad(name).data<float>()[i], 0.0f) << name;
  double wnorm = 0;
  for (int64_t i = 0; i < 6; ++i) wnorm += std::fabs(ex.grad("w").data<float>()[i]);
  EXPECT_GT(wnorm, 0.0);
}

TEST(Executor, NonTrainableParameterHasNoGradient) {
  Graph g;
  int x = g.add_input("x", {3});
  int w = g.add_param("w", random_tensor({2, 3}, 1), false);
  g.set_output(g.add("linear", {x, w}));
  Executor ex(g);
  EXPECT_THROW(ex.grad("w"), Error);
  ex.forward({random_tensor({4, 3}, 4)});
  EXPECT_THROW(ex.backward(random_tensor({4, 2}, 5)), Error);  // nothing to differentiate
}

TEST(Executor, AlternatingBatchSizes) {
  // conv -> relu -> maxpool -> flatten -> linear: every kernel must be correct
  // at each batch size, with one cached instance per shape.
  Graph g;
  int x = g.add_input("x", {2, 5, 5});
  int cw = g.add_param("cw", random_tensor({3, 2, 3, 3}, 1));
  int cb = g.add_param("cb", random_tensor({3}, 2));
  int c = g.add("conv2d", {x, cw, cb}, {{"padding", 1}});
  int r = g.add("relu", {c});
  int p = g.add("maxpool2d", {r}, {{"kernel", 2}});
  int f = g.add("flatten", {p});
  int lw = g.add_param("lw", random_tensor({4, 12}, 3));
  int lb = g.add_param("lb", random_tensor({4}, 4));
  g.set_output(g.add("linear", {f, lw, lb}));

  auto reference = [&](const Tensor& xv) {
    Ref h = ref_conv({1, 1, 1, 1})({xv, g.param("cw").value, g.param("cb").value}, false);
    Tensor ht = Tensor::empty(h.shape);
    for (size_t i = 0; i < h.v.size(); ++i) ht.data<float>()[i] = static_cast<float>(std::max(0.0, h.v[i]));
    Ref pooled = ref_pool({})({ht}, false);
    Tensor pt = Tensor::empty({xv.dim(0), 12});
    for (size_t i = 0; i < pooled.v.size(); ++i) pt.data<float>()[i] = static_cast<float>(pooled.v[i]);
    return ref_linear({pt, g.param("lw").value, g.param("lb").value}, false);
  };
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "eval");
    Executor ex(g);
    ex.set_training(training);
    ex.set_input_grads(training);
    std::map<int64_t, Tensor> first_dx;  // per batch size: the input gradient of the first visit
    for (int step = 0; step < 6; ++step) {
      const int64_t batch = step % 2 ? 5 : 2;
      Tensor xv = random_tensor({batch, 2, 5, 5}, 100 + batch);  // the same input at each visit
      const Tensor& y = ex.forward({xv});
      ASSERT_EQ(y.shape(), (Shape{batch, 4}));
      const Ref ref = reference(xv);
      EXPECT_LT(norm_error(y.data<float>(), ref.v), 1e-5) << "step " << step << " batch " << batch;
      if (training) {
        // d(sum y)/d(lb) = batch for every output.
        ex.backward(Tensor::full({batch, 4}, 1.0f));
        for (int o = 0; o < 4; ++o) EXPECT_FLOAT_EQ(ex.grad("lb").data<float>()[o], static_cast<float>(batch));
        const Tensor& dx = ex.input_grad(0);
        ASSERT_EQ(dx.shape(), xv.shape());
        if (!first_dx.count(batch)) {
          first_dx[batch] = dx.clone();
        } else {
          for (int64_t i = 0; i < dx.numel(); ++i)
            ASSERT_EQ(dx.data<float>()[i], first_dx[batch].data<float>()[i]) << "step " << step << " element " << i;
        }
      }
    }
  }
}

TEST(Executor, ParamUpdatesAreSeenByLaterForwards) {
  Graph g;
  int x = g.add_input("x", {3});
  int w = g.add_param("w", Tensor::full({1, 3}, 1.0f));
  g.set_output(g.add("linear", {x, w}));
  Executor ex(g);
  Tensor xv = Tensor::full({1, 3}, 1.0f);
  EXPECT_FLOAT_EQ(ex.forward({xv}).data<float>()[0], 3.0f);
  g.param("w").value.fill(2.0f);  // in place, as an optimizer does
  EXPECT_FLOAT_EQ(ex.forward({xv}).data<float>()[0], 6.0f);
}

TEST(Executor, ScalarLossBackward) {
  // mse(linear(x), t): backward() with no argument seeds d(loss) = 1.
  Graph g;
  int x = g.add_input("x", {3});
  int t = g.add_input("t", {2});
  int w = g.add_param("w", random_tensor({2, 3}, 1));
  int y = g.add("linear", {x, w});
  g.set_output(g.add("mse", {y, t}));
  Executor ex(g);
  ex.set_training(true);
  Tensor xv = random_tensor({4, 3}, 2), tv = random_tensor({4, 2}, 3);
  ex.forward({xv, tv});
  ex.backward();
  Tensor g1 = ex.grad("w").clone();
  ex.forward({xv, tv});
  ex.backward(Tensor::full({}, 1.0f));
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(ex.grad("w").data<float>()[i], g1.data<float>()[i]);
}

}  // namespace
