// The timing loop the C++ probes in bench/ share: one call timed at a time
// with steady_clock, a percentile of the microseconds.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace leanai::probe {

// The q-th percentile (0.5: the median) of `runs` timed calls, in microseconds.
template <typename F>
double percentile_us(F&& call, double q, int runs) {
  std::vector<double> t;
  t.reserve(static_cast<size_t>(runs));
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[static_cast<size_t>(q * static_cast<double>(t.size() - 1))];
}

}  // namespace leanai::probe
