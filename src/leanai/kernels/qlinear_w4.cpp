// qlinear_w4 (precision.h): y = x W^T + b with W in INT4 blocks, x and y f32.
// Up to 8 rows: the packed GEMV (int4_gemv.h), weights never widened in
// memory. More rows: the layer is compute-bound, so tiles of 256 weight rows
// are widened to f32 and multiplied by a oneDNN matmul primitive created in
// prepare(). (dnnl_sgemm, kernels/sgemm.h, was tried first: at 64 x 4096 x
// 4096 it ran at half the matmul primitive's speed here, and 2x slower still
// with 64-row tiles.)
#include <algorithm>

#include <dnnl.hpp>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/int4_gemv.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/int4_blocks.h"

namespace leanai {
namespace {

class QLinearW4Kernel : public OpKernel {
 public:
  explicit QLinearW4Kernel(const Node& n) : block_(attr_int(n, "block", 32)), in_attr_(attr_int(n, "in", -1)) {}

  Shape prepare(const std::vector<Shape>& in, bool) override {
    check(in.size() == 4, "qlinear_w4 takes (x, Wp, w_scale, b), got " + std::to_string(in.size()) + " inputs");
    const Shape& x = in[0];
    check(x.size() >= 2, "qlinear_w4 expects input [batch, features], got " + shape_str(x));
    k_ = x.back();
    check(in_attr_ == k_, "qlinear_w4: attribute 'in' is " + std::to_string(in_attr_) + " but the input has " +
                              std::to_string(k_) + " features (input " + shape_str(x) + ")");
    check_int4_layout("qlinear_w4", k_, block_, in[1], in[2]);
    out_ = in[1][0];
    check(in[3] == Shape{out_}, "qlinear_w4: bias must be [" + std::to_string(out_) + "], got " + shape_str(in[3]));
    rows_ = shape_numel(x) / k_;
    if (rows_ <= kInt4GemvMaxRows) {
      split_ = Tensor::empty({2, rows_, int4_split_stride(k_)});
    } else {
      tile_rows_ = std::min<int64_t>(256, out_);
      tile_ = Tensor::empty({tile_rows_, k_});
      split_ = Tensor::empty({rows_, k_});
      full_tile_ = make_tile_matmul(tile_rows_);
      if (out_ % tile_rows_) last_tile_ = make_tile_matmul(out_ % tile_rows_);
    }
    Shape y = x;
    y.back() = out_;
    return y;
  }

  void forward(const Inputs& in, Tensor& y, RunContext&) override {
    const float* x = in[0]->data<float>();
    const uint8_t* wp = in[1]->data<uint8_t>();
    const float* scales = in[2]->data<float>();
    const float* b = in[3]->data<float>();
    float* out = y.data<float>();
    if (rows_ <= kInt4GemvMaxRows)
      gemv(x, wp, scales, out);
    else
      tiled_matmul(x, wp, scales, out);
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t o = 0; o < out_; ++o) out[r * out_ + o] += b[o];
  }

  void backward(const Inputs&, const Tensor&, const Tensor&, const InputGrads&, RunContext&) override {
    throw Error("qlinear_w4 is inference-only (INT4 weights have no gradient); train the float model, then quantize");
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override {
    return 2.0 * (shape_numel(in[0]) / in[0].back()) * in[1][0] * in[0].back();
  }

 private:
  void gemv(const float* x, const uint8_t* wp, const float* scales, float* y) {
    float* even = split_.data<float>();
    float* odd = even + rows_ * int4_split_stride(k_);
    int4_split_columns(x, rows_, k_, even, odd);
    const Int4GemvArgs a{even, odd, int4_split_stride(k_), rows_, k_, wp, scales, block_, y, out_};
    // Chunks of 64 output rows (16 KB of packed weights at K = 512) per thread.
    constexpr int64_t kChunk = 64;
    const int64_t chunks = (out_ + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (out_ * k_ >= (int64_t{1} << 18))
    for (int64_t c = 0; c < chunks; ++c) int4_gemv(a, c * kChunk, std::min(out_, (c + 1) * kChunk));
  }

  // y[:, o0 : o0 + t] = xs [rows, K] . tile^T, the tile [t, K] read as [K, t] ("ba").
  struct TileMatmul {
    dnnl::memory::desc src, weights, dst;
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul prim;
  };
  TileMatmul make_tile_matmul(int64_t t) const {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    TileMatmul m;
    m.src = dnnl::memory::desc({rows_, k_}, dt::f32, tag::ab);
    m.weights = dnnl::memory::desc({k_, t}, dt::f32, tag::ba);
    m.dst = dnnl::memory::desc({rows_, t}, dt::f32, dnnl::memory::dims{out_, 1});
    m.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(m.src, m.weights, m.dst), user_scratchpad(), cpu_engine());
    m.prim = dnnl::matmul(m.pd);
    return m;
  }

  void tiled_matmul(const float* x, const uint8_t* wp, const float* scales, float* y) {
    float* tile = tile_.data<float>();
    float* xs = split_.data<float>();
    for (int64_t r = 0; r < rows_; ++r) int4_split_row(x + r * k_, k_, xs + r * k_);
    const int64_t blocks = k_ / block_;
    for (int64_t o0 = 0; o0 < out_; o0 += tile_rows_) {
      const int64_t t = std::min(tile_rows_, out_ - o0);
      for (int64_t o = 0; o < t; ++o)
        int4_widen_row(wp + (o0 + o) * (k_ / 2), scales + (o0 + o) * blocks, k_, block_, tile + o * k_);
      TileMatmul& m = t == tile_rows_ ? full_tile_ : last_tile_;
      auto& eng = cpu_engine();
      m.prim.execute(cpu_stream(), {{DNNL_ARG_SRC, dnnl::memory(m.src, eng, xs)},
                                    {DNNL_ARG_WEIGHTS, dnnl::memory(m.weights, eng, tile)},
                                    {DNNL_ARG_DST, dnnl::memory(m.dst, eng, y + o0)},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad_for(m.pd.scratchpad_desc())}});
    }
  }

  int64_t block_, in_attr_;
  int64_t k_ = 0, out_ = 0, rows_ = 0, tile_rows_ = 0;
  Tensor split_, tile_;  // scratch, sized once in prepare
  TileMatmul full_tile_, last_tile_;
};

}  // namespace

void register_qlinear_w4_ops() {
  OpInfo info;
  info.name = "qlinear_w4";
  info.min_inputs = 4;
  info.max_inputs = 6;  // + fused residual adds
  info.differentiable = [](int i) { return i == 0; };
  info.make = [](const Node& n) { return with_post_ops(n, std::make_unique<QLinearW4Kernel>(n), 4); };
  info.input_dtype = [](int i) { return i == 1 ? DType::u8 : DType::f32; };
  register_op(std::move(info));
}

}  // namespace leanai
