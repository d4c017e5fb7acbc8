// What handing work to the other core costs on this machine: the median
// round trip of a flag between two threads that spin on it, against an empty
// OpenMP parallel region on 2 threads (the fork and join every split layer
// pays). 200,000 of each; microseconds.
//
//   g++ -O2 -std=c++20 -fopenmp bench/handoff_probe.cpp -o /tmp/handoff && /tmp/handoff
#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "probe_timing.h"

using leanai::probe::percentile_us;
constexpr int kRuns = 200000;

int main() {
  alignas(64) std::atomic<long> go{0};
  alignas(64) std::atomic<long> done{0};
  // The partner answers every round trip the two percentiles time.
  constexpr long kRoundTrips = 2L * kRuns;
  std::thread partner([&] {
    for (long g = 1; g <= kRoundTrips; ++g) {
      while (go.load(std::memory_order_acquire) != g) _mm_pause();
      done.store(g, std::memory_order_release);
    }
  });
  long g = 0;
  auto round_trip = [&] {
    go.store(++g, std::memory_order_release);
    while (done.load(std::memory_order_acquire) != g) _mm_pause();
  };
  const double p50 = percentile_us(round_trip, 0.5, kRuns), p10 = percentile_us(round_trip, 0.1, kRuns);
  partner.join();
  std::printf("spinning round trip: p50 %.3f us, p10 %.3f\n", p50, p10);
  omp_set_num_threads(2);
  auto region = [] {
#pragma omp parallel
    { asm volatile(""); }
  };
  std::printf("empty OpenMP region, 2 threads: p50 %.3f us, p10 %.3f\n", percentile_us(region, 0.5, kRuns),
              percentile_us(region, 0.1, kRuns));
}
