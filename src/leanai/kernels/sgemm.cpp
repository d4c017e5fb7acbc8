#include "leanai/kernels/sgemm.h"

#include <string>

#include <dnnl.hpp>

#include "leanai/core/error.h"

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

}  // namespace leanai
