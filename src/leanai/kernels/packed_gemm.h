// Small-M GEMM against weights packed once: y[m, n] = act(x[m, k] W^T + bias)
// for W [n, k] row-major (one row per output, as linear layers store it).
//
// Why not dnnl_sgemm: the expert and block GEMMs of the sparse layers (moe,
// block_gated_linear) run on a few dozen rows or one, with a different row
// count every call, so fixed-shape oneDNN primitives do not fit, and
// dnnl_sgemm repacks W on every call: on a 16 x 64 x 256 expert GEMM the
// packing costs as much as the multiply. In a compiled Plan the weights do not
// change, so they are packed once here and each call only multiplies. The Plan
// also times it against oneDNN for linear layers at batch 1-4
// (runtime/lower_packed_linear.cpp), where packed_gemm_by_panels splits a
// layer's outputs over the cores.
//
// Layout: W is cut into strips of kGemmStrip (16) outputs; a strip stores
// its outputs' weights transposed, k rows of 16 floats (zeros past n: one
// 64-byte line per input feature), so the kernel reads whole vectors of
// outputs per feature. The kernel takes two strips at a time (a panel of 32
// outputs) where it can; a single row (batch 1), up to 8 (see wide_row in
// the .cpp). Strips rather than interleaved 32-wide rows: at
// batch 1 a layer's outputs split over the cores in strips, and a core
// taking one strip of a 32-wide row still had the other half's lines pulled
// in by the hardware prefetcher (a 784 x 154 layer split 80 + 74 took as
// long as one of 192 outputs). A gated layer of 77 outputs streams 80
// columns. One source for SSE4 to AVX-512 (Google Highway, chosen at run
// time).
//
//   std::vector<float> packed(packed_gemm_floats(n, k));
//   pack_gemm_weights(w, n, k, packed.data());
//   packed_gemm(m, x, k, {packed.data(), n, k}, bias, /*relu=*/true, y, n);
#pragma once
#include <cstdint>
#include <string>

#include "leanai/core/tensor.h"

namespace leanai {

constexpr int64_t kGemmStrip = 16;
constexpr int64_t kGemmPanel = 2 * kGemmStrip;

// Floats one packed [n, k] matrix takes (a multiple of kGemmStrip * k).
int64_t packed_gemm_floats(int64_t n, int64_t k);

// Packs w [n, k] (row stride k) into `packed` (packed_gemm_floats(n, k) floats).
void pack_gemm_weights(const float* w, int64_t n, int64_t k, float* packed);

// Packs `count` matrices [n, k] stored back to back (a stack of expert weights
// [count, n, k]) into one tensor: matrix e starts at e * packed_gemm_floats(n, k).
Tensor pack_gemm_stack(const float* w, int64_t count, int64_t n, int64_t k);
// A name for that packing ("gemm panels 16x64x256"), to key shared copies by.
std::string pack_gemm_kind(int64_t count, int64_t n, int64_t k);

struct PackedGemmWeights {
  const float* strips;
  int64_t n, k;
};

// Whether `macs` multiply-adds are worth splitting over the thread pool: not
// inside a parallel region (the caller's threads are already busy), and about
// 30 us of work on one core at least (waking the pool costs a few us).
bool packed_gemm_worth_splitting(int64_t macs);

// Matrix e [n, k] of a stack packed by pack_gemm_stack.
inline PackedGemmWeights packed_gemm_matrix(const Tensor& stack, int64_t e, int64_t n, int64_t k) {
  return {stack.data<float>() + e * packed_gemm_floats(n, k), n, k};
}

// y[i, j] = act(sum_p x[i, p] w[j, p] + bias[j]) for i < m, j < n; bias may be
// null (no bias), act is ReLU or the identity. ldx and ldy are row strides.
// Splits over the thread pool when called outside a parallel region with
// enough work.
void packed_gemm(int64_t m, const float* x, int64_t ldx, PackedGemmWeights w, const float* bias, bool relu, float* y,
                 int64_t ldy);

// For a few rows (batch 1), where streaming the weights is the cost: the
// outputs split over the threads (outside a parallel region) in steps of one
// strip, so the shares differ by 16 columns at most; each thread always
// takes the same ones, so each core keeps its share of the weights in its own
// cache from one call to the next. may_split false runs on the calling
// thread: a split costs a fork and join (about 1 us on a 2-core VM here),
// which a layer of 130 KB did not win back, so the Plan times both.
void packed_gemm_by_panels(int64_t m, const float* x, int64_t ldx, PackedGemmWeights w, const float* bias, bool relu,
                           float* y, int64_t ldy, bool may_split = true);
// Whether packed_gemm_by_panels splits an [n, k] matrix when it may: two
// strips and 64 KB of weights at least, more than one thread, and not
// called inside a parallel region.
bool packed_gemm_panels_can_split(int64_t n, int64_t k);

// The same with the rows of x picked by index: row i of y reads x row
// rows[i]. The sparse layers' experts and blocks read their tokens in place
// this way, without first copying them together.
void packed_gemm_rows(int64_t m, const float* x, int64_t ldx, const int64_t* rows, PackedGemmWeights w,
                      const float* bias, bool relu, float* y, int64_t ldy);

}  // namespace leanai
