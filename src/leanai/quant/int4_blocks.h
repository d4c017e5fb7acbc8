// INT4 block-wise weights, the storage of precision.h's qlinear_w4:
//   packed u8 [out, K/2]: two signed 4-bit values per byte, the low nibble is
//          the even column, values in [-8, 7];
//   scales f32 [out, K/block]: w[o, k] = value[o, k] * scales[o, k / block].
// block is 32 or 64 and must divide K.
//
//   Int4Weights q = quantize_int4_blocks(w, 32);     // w f32 [out, K]
//   Tensor back = dequantize_int4_blocks(q);         // f32 [out, K]
//
// Scales: Int4ScaleRule::absmax takes max|w| / 7 per block, so every weight
// lands within half a step of its value. Int4ScaleRule::mse (the default)
// also tries smaller scales (0.80..0.99 of that, and max|w| / 8, which puts a
// negative extreme exactly on -8) and keeps the one with the least squared
// error in the block: a few extreme weights clip slightly, the rest get a
// finer grid (typically 5-10% less error on Gaussian weights).
#pragma once
#include <cstdint>
#include <string>

#include "leanai/core/tensor.h"

namespace leanai {

enum class Int4ScaleRule { absmax, mse };

struct Int4Weights {
  Tensor packed;  // u8 [out, K/2]
  Tensor scales;  // f32 [out, K/block]
  int64_t block = 32;
};

// Throws Error unless block is 32 or 64, K a positive multiple of it, and the
// packed / scales shapes fit [out, K/2] / [out, K/block]; `who` starts the message.
void check_int4_layout(const std::string& who, int64_t k, int64_t block, const Shape& packed, const Shape& scales);

// Two values per byte, low nibble first. values: i8 [out, K] in [-8, 7], K even.
Tensor pack_int4(const Tensor& values);
// The inverse: u8 [out, K/2] -> i8 [out, K], sign-extended.
Tensor unpack_int4(const Tensor& packed);

Int4Weights quantize_int4_blocks(const Tensor& w, int64_t block, Int4ScaleRule rule = Int4ScaleRule::mse);
Tensor dequantize_int4_blocks(const Int4Weights& w);
// One row: dst[k] = value[k] * scales[k / block], k < K.
void dequantize_int4_row(const uint8_t* packed, const float* scales, int64_t k, int64_t block, float* dst);

}  // namespace leanai
