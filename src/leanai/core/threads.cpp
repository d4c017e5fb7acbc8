#include "leanai/core/threads.h"

#include <omp.h>
#include <xmmintrin.h>

#include <atomic>

namespace leanai {

void set_num_threads(int n) { omp_set_num_threads(n > 0 ? n : omp_get_num_procs()); }

int num_threads() { return omp_get_max_threads(); }

void flush_denormals() {
  static std::atomic<int> done_for{0};
  const int threads = omp_get_max_threads();
  if (done_for.load() >= threads) return;
  constexpr unsigned kFtzDaz = 0x8040;  // MXCSR flush-to-zero and denormals-are-zero
  _mm_setcsr(_mm_getcsr() | kFtzDaz);
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | kFtzDaz);
  done_for.store(threads);
}

}  // namespace leanai
