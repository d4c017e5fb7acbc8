// Max pooling of u8 / s8 activations in NHWC, for int8 regions of the compiled
// Plan: rounding commutes with max, so pooling runs on the bytes themselves.
// oneDNN 2.6's int8 pooling took longer than its f32 pooling of 4x the bytes
// on the reference CNN (13% of the int8 model's time); this one is a vector
// max over the channels of each window, with a path of its own for whole 2x2
// windows at stride 2 (no clipping, no window loops), one source for SSE4 to
// AVX-512 (Google Highway, chosen at run time).
//
//   Int8PoolShape s{n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw};
//   int8_maxpool_nhwc(s, /*is_signed=*/false, x, y);
#pragma once
#include <cstdint>

namespace leanai {

struct Int8PoolShape {
  int64_t n, c, h, w;   // input [n, h, w, c]
  int64_t oh, ow;       // output [n, oh, ow, c]
  int64_t kh, kw, sh, sw, ph, pw;
};

// Windows are clipped to the input: padding never wins the max (as oneDNN and
// PyTorch). Splits over samples on the thread pool when called outside a
// parallel region with enough work.
void int8_maxpool_nhwc(const Int8PoolShape& s, bool is_signed, const void* x, void* y);

}  // namespace leanai
