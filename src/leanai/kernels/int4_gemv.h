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
  const float* x_even;    // [rows, K/2]: x[r, 2j]
  const float* x_odd;     // [rows, K/2]: x[r, 2j + 1]
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
// x [rows, K] -> even [rows, K/2], odd [rows, K/2].
void int4_split_columns(const float* x, int64_t rows, int64_t k, float* even, float* odd);
// The instruction set the dispatcher picked on this CPU ("AVX3", "AVX2", ...).
const char* int4_gemv_target();
// For tests: the instruction sets compiled here that this CPU runs, and
// forcing one of them (by name; "" goes back to the best).
std::vector<std::string> int4_gemv_targets();
void int4_gemv_use_target(const std::string& name);

}  // namespace leanai
