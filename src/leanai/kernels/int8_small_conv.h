// An int8 convolution for layers with one or two input channels: a network's
// first layer on grey-scale (or two-plane) images.
//
// oneDNN's int8 kernels multiply 4 input channels per VNNI instruction, so a
// 1-channel 3x3 layer pays 9 instructions per 16 outputs for 9 useful products
// in 36 slots (the reference CNN's conv1 ran at 11% of the int8 peak, slower
// than in f32). Here the 4 bytes of each VNNI dot are 4 neighbouring columns of
// one kernel row instead, so the same layer takes 3 instructions, and the f32
// input is quantized inside the kernel (no separate quantize step).
//
//   Int8SmallConv conv(spec, wq, w_scale, bias);   // packs the weights once
//   conv.run(x_nchw_f32, batch, y_nhwc);          // y: f32, u8 or s8 per spec.output
//
// Needs AVX-512 with VNNI (int8_small_conv_cpu_ok); the caller lowers to
// oneDNN elsewhere. Results equal the reference qconv2d kernel's up to f32
// rounding of the epilogue (requantized outputs: at most one step apart).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "leanai/quant/quant_params.h"

namespace leanai {

struct Int8SmallConvSpec {
  int64_t in_c = 1, in_h = 0, in_w = 0;
  int64_t out_c = 0, kh = 3, kw = 3;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  QuantParams input;                  // how the f32 input is quantized (u8 or i8)
  std::optional<QuantParams> output;  // requantize to these (u8 / i8); none: f32
  bool relu = false;

  int64_t out_h() const { return (in_h + 2 * pad_h - kh) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kw) / stride_w + 1; }
};

// Whether this kernel does fewer multiply instructions than oneDNN's for the
// layer: one per (channel, kernel row, 4 columns) here against one per
// (kernel tap, 4 channels) there. True for 1 and 2 input channels.
bool int8_small_conv_pays(int64_t in_c, int64_t kh, int64_t kw);
// AVX-512 (F, BW, VL) with VNNI on this CPU.
bool int8_small_conv_cpu_ok();

class Int8SmallConv {
 public:
  // wq [out_c, in_c, kh, kw] int8, w_scale and bias [out_c].
  Int8SmallConv(const Int8SmallConvSpec& spec, const int8_t* wq, const float* w_scale, const float* bias);

  // x [n, in_c, in_h, in_w] f32 (plain), y [n, out_h, out_w, out_c] (nhwc) as
  // f32 or, with spec.output, u8 / i8 bytes. Samples run in parallel when
  // called outside a parallel region.
  void run(const float* x, int64_t n, void* y) const;

  const Int8SmallConvSpec& spec() const { return spec_; }
  int64_t packed_bytes() const;

 private:
  void run_sample(const float* x, uint8_t* pad_buf, void* y) const;

  Int8SmallConvSpec spec_;
  int64_t groups_ = 0;       // of 16 output channels
  int64_t dots_ = 0;         // 4-byte dots per output: in_c * kh * ceil(kw / 4)
  int64_t row_stride_ = 0;   // bytes per row of the padded, quantized input
  int64_t plane_bytes_ = 0;  // per channel
  uint8_t pad_value_ = 0;    // what a real 0 quantizes to (as u8)
  std::vector<int64_t> dot_offset_;  // per dot: where its 4 input bytes start, from the window's corner
  std::vector<int32_t> packed_;  // [group][dot][16 lanes], 4 s8 weights per lane
  std::vector<int32_t> acc0_;    // per channel: -zero point * sum(w), the accumulator's start
  std::vector<float> mul_, add_;  // per channel: out = acc * mul + add (f32, or pre-rounding int8)
};

}  // namespace leanai
