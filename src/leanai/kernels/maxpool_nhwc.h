// Max pooling of NHWC values (u8, s8 or f32) on leanai's own kernel, for the
// compiled Plan. In int8 regions rounding commutes with max, so pooling runs
// on the bytes themselves: oneDNN 2.6's int8 pooling took longer than its f32
// pooling of 4x the bytes on the reference CNN (13% of the int8 model's
// time). For f32, oneDNN's pooling primitive costs a few microseconds a call
// at batch 1, a large share of a small CNN's time. A blocked layout
// (nChw16c) is pooled as NHWC images of 16 channels. This is a vector max
// over the channels of each window, with a path of its own for whole 2x2
// windows at stride 2 (no clipping, no window loops), one source for SSE4 to
// AVX-512 (Google Highway, chosen at run time).
//
//   MaxPoolShape s{n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw};
//   maxpool_nhwc(s, PoolElement::u8, x, y);
#pragma once
#include <cstdint>

namespace leanai {

struct MaxPoolShape {
  int64_t n, c, h, w;   // input [n, h, w, c]
  int64_t oh, ow;       // output [n, oh, ow, c]
  int64_t kh, kw, sh, sw, ph, pw;
};

enum class PoolElement { u8, s8, f32 };

// Windows are clipped to the input: padding never wins the max (as oneDNN and
// PyTorch). Splits over samples on the thread pool when called outside a
// parallel region with enough work.
void maxpool_nhwc(const MaxPoolShape& s, PoolElement element, const void* x, void* y);

}  // namespace leanai
