// The INT4 GEMV behind qlinear_w4 at small batches: weights stay packed
// (0.5 byte each) and are widened to f32 in registers, so a memory-bound
// layer reads 8x fewer bytes than its f32 form. One source, compiled by
// Google Highway for SSE4 / AVX2 / AVX-512 and picked at run time for the CPU
// (HWY_DYNAMIC_DISPATCH), never for the build machine.
//
// The input is split into its even and odd columns first (int4_split_columns):
// byte j of a weight row holds columns 2j (low nibble) and 2j + 1 (high), so
// each nibble lane then meets its x lane without a shuffle.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leanai {

struct Int4GemvArgs {
  const float* x_even;    // row r at r * x_stride: x[r, 2j]
  const float* x_odd;     // row r at r * x_stride: x[r, 2j + 1]
  int64_t x_stride;       // int4_split_stride(K)
  int64_t rows;           // 1..8
  int64_t k;              // multiple of block
  const uint8_t* packed;  // [out, K/2]
  const float* scales;    // [out, K/block]
  int64_t block;          // 32 or 64
  float* y;               // y[r * ldy + o] = sum_k x[r, k] * w[o, k]
  int64_t ldy;
};

// Maximum rows one call handles.
constexpr int64_t kInt4GemvMaxRows = 8;

// Computes output columns [o_begin, o_end) of y (no bias).
void int4_gemv(const Int4GemvArgs& a, int64_t o_begin, int64_t o_end);
// Row stride of the split input: K/2 plus one cache line, so the 2 x rows
// streams do not all map to the same L1 set (at K = 4096 they were 8 KB
// apart, and 10+ streams in an 8-way cache made 8 rows 6x slower than 4).
inline int64_t int4_split_stride(int64_t k) { return k / 2 + 16; }
// x [rows, K] -> even and odd columns, rows int4_split_stride(K) apart; each
// of even / odd holds rows * int4_split_stride(K) floats.
void int4_split_columns(const float* x, int64_t rows, int64_t k, float* even, float* odd);
// Larger batches widen weights to f32 for sgemm. Both sides use the split
// column order (the K even columns, then the K odd ones), which leaves x W^T
// unchanged and lets the nibbles be stored without interleaving.
// One packed row -> dst[K] in split order (scaled f32).
void int4_widen_row(const uint8_t* packed, const float* scales, int64_t k, int64_t block, float* dst);
// One input row x[K] -> dst[K] in split order.
void int4_split_row(const float* x, int64_t k, float* dst);
// The instruction set the dispatcher picked on this CPU ("AVX3", "AVX2", ...).
const char* int4_gemv_target();
// For tests: the instruction sets compiled here that this CPU runs, and
// forcing one of them (by name; "" goes back to the best).
std::vector<std::string> int4_gemv_targets();
void int4_gemv_use_target(const std::string& name);

}  // namespace leanai
