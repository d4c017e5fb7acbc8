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

}  // namespace leanai
