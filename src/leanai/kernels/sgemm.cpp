#include "leanai/kernels/sgemm.h"

#include <algorithm>
#include <string>

#include <dnnl.hpp>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/kernels/packed_gemm.h"

namespace leanai {

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: leave beta * C (BLAS semantics), without asking oneDNN about k = 0
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw Error("oneDNN sgemm failed (status " + std::to_string(st) + ")");
}

void linear_rows(int64_t m, const float* x, int64_t ldx, const float* w, const float* packed, int64_t n, int64_t k,
                 const float* bias, bool relu, float* y, int64_t ldy) {
  if (packed) return packed_gemm(m, x, ldx, {packed, n, k}, bias, relu, y, ldy);
  if (m == 0 || n == 0) return;
  for (int64_t i = 0; i < m; ++i) {
    float* row = y + i * ldy;
    if (bias)
      std::copy_n(bias, n, row);
    else
      std::fill_n(row, n, 0.0f);
  }
  sgemm('N', 'T', m, n, k, x, ldx, w, k, 1.0f, y, ldy);
  if (!relu) return;
#pragma omp parallel for if (m * n > kParallelMinElements)
  for (int64_t i = 0; i < m; ++i) {
    float* __restrict row = y + i * ldy;
    for (int64_t j = 0; j < n; ++j) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
  }
}

}  // namespace leanai
