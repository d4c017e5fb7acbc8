// leanai's packed batch-1 GEMM (kernels/packed_gemm.h, packed_gemm_by_panels)
// on one layer of n outputs and k inputs at batch 1 (or ROWS rows): median and 10th
// percentile microseconds of 20,000 calls, then an empty OpenMP region's
// cost on the same threads. Build it against two libleanai.a builds to
// compare a change side by side (the prefetch figure in docs/benchmarks.md:
// 80 784 1, three interleaved runs of each build).
//
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/packed_gemv_probe.cpp build/libleanai.a -lhwy -ldnnl -lfmt -o /tmp/gemv
//   /tmp/gemv 80 784 1      # n k threads [rows]
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "leanai/core/threads.h"
#include "leanai/kernels/packed_gemm.h"
#include "probe_timing.h"

using leanai::probe::percentile_us;
constexpr int kRuns = 20000;

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s N K THREADS [ROWS]\n", argv[0]);
    return 2;
  }
  const int64_t n = std::atoll(argv[1]), k = std::atoll(argv[2]);
  const int threads = std::atoi(argv[3]);
  const int64_t m = argc == 5 ? std::atoll(argv[4]) : 1;
  leanai::set_num_threads(threads);
  std::vector<float> w(n * k, 0.01f), x(m * k, 1.0f), b(n, 0.0f), y(m * n);
  // 64-byte aligned as the runtime's tensors are: a strip's row is then one
  // cache line, not two halves of neighbouring ones.
  leanai::Tensor packed = leanai::Tensor::empty({leanai::packed_gemm_floats(n, k)});
  leanai::pack_gemm_weights(w.data(), n, k, packed.data<float>());
  auto layer = [&] {
    leanai::packed_gemm_by_panels(m, x.data(), k, {packed.data<float>(), n, k}, b.data(), true, y.data(), n);
  };
  const double p50 = percentile_us(layer, 0.5, kRuns), p10 = percentile_us(layer, 0.1, kRuns);
  std::printf("rows %lld n %lld k %lld threads %d: p50 %.2f us p10 %.2f\n", static_cast<long long>(m),
              static_cast<long long>(n), static_cast<long long>(k), threads, p50, p10);
  auto empty = [] {
#pragma omp parallel
    { asm volatile(""); }
  };
  std::printf("empty region p50 %.2f us\n", percentile_us(empty, 0.5, kRuns));
}
