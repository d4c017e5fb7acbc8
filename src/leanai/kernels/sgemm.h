// Row-major single-precision GEMM on oneDNN's dnnl_sgemm: no primitive to
// create, so it suits shapes that change on every call (the token count of
// each expert in a Mixture-of-Experts layer).
#pragma once
#include <cstdint>

namespace leanai {

// C = op(A) op(B) + beta * C, with op = transpose when ta / tb is 'T'.
// A is [m, k] after op, B is [k, n] after op, C is [m, n]; lda, ldb, ldc are
// row strides. Does nothing when m or n is 0; with k == 0 it scales C by beta.
void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

// A linear layer on m rows: y[m, n] = act(x[m, k] w^T + bias), w [n, k]
// row-major, act ReLU or the identity, bias null for none. With `packed` (w
// packed by pack_gemm_weights, for weights that stay fixed) it runs the packed
// small-M kernel; without, dnnl_sgemm on w (weights that change between calls,
// as in training).
void linear_rows(int64_t m, const float* x, int64_t ldx, const float* w, const float* packed, int64_t n, int64_t k,
                 const float* bias, bool relu, float* y, int64_t ldy);

}  // namespace leanai
