// An f32 convolution for layers with a few input channels: a network's first
// layer on grey-scale or RGB images, writing 16-channel blocks (nChw16c),
// optionally with the 2x2 max pooling that follows it fused in.
//
// oneDNN's f32 kernels vectorize over input channels as well as outputs, and
// with one input channel most of that width is idle: the gated cnn-bn's
// first layer (1 -> 16 channels, 28x28, 3x3; 113k multiply-adds) took 6.3 us
// at batch 1 on 2 threads. Here each multiply-add is one FMA of a broadcast
// input pixel into 16 output channels, 8 pixels of a row at once, on the
// calling core or split by rows over the cores (the lowering times both).
// Fused, a 2x2 pooling keeps the larger of each window while the values are
// still in registers: the conv output (50 KB for cnn-bn's first layer) is
// never written, and no separate pooling step reads it back from the other
// core's cache. One source for SSE4 to AVX-512 (Google Highway, chosen at
// run time).
//
//   F32SmallConv conv(spec, w, bias);   // w [out_c, in_c, kh, kw], bias [out_c] or null
//   conv.run(x_nchw, batch, y_nChw16c);
#pragma once
#include <cstdint>
#include <vector>

namespace leanai {

struct F32SmallConvSpec {
  int64_t in_c = 1, in_h = 0, in_w = 0;
  int64_t out_c = 0, kh = 3, kw = 3;  // out_c a multiple of 16
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool relu = false;
  bool pool = false;        // then a 2x2 max pool at stride 2 (floor), fused: the conv output is never stored
  bool split_rows = false;  // below 8 samples, each sample's rows split over the threads

  int64_t out_h() const { return (in_h + 2 * pad_h - kh) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kw) / stride_w + 1; }
  // The stored output's height and width (pooled or not).
  int64_t y_h() const { return pool ? out_h() / 2 : out_h(); }
  int64_t y_w() const { return pool ? out_w() / 2 : out_w(); }
};

// The layers this kernel is written for: at most 4 input channels, whole
// 16-channel output blocks.
bool f32_small_conv_fits(int64_t in_c, int64_t out_c);

class F32SmallConv {
 public:
  // Throws leanai::Error on a geometry it cannot run (see f32_small_conv_fits).
  F32SmallConv(const F32SmallConvSpec& spec, const float* w, const float* bias);

  // x [n, in_c, in_h, in_w] (plain), y [n, out_c / 16, y_h, y_w, 16].
  // Samples run in parallel when called outside a parallel region with 8 or
  // more; fewer split their rows over the threads with spec.split_rows.
  void run(const float* x, int64_t n, float* y) const;

  const F32SmallConvSpec& spec() const { return spec_; }
  int64_t packed_bytes() const {
    return static_cast<int64_t>((weights_.size() + bias_.size()) * sizeof(float) +
                                tap_offset_.size() * sizeof(int64_t));
  }

 private:
  F32SmallConvSpec spec_;
  int64_t padded_h_ = 0, padded_w_ = 0;  // of the zero-padded input planes
  std::vector<float> weights_;  // [group][in_c][kh][kw][16]
  std::vector<int64_t> tap_offset_;  // per (c, ky, kx): where its input lies from the window's corner
  std::vector<float> bias_;     // [out_c] (zeros without one)
};

}  // namespace leanai
