#include "leanai/runtime/benchmark.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "leanai/core/rng.h"

namespace leanai {

LatencyStats time_runs(const std::function<void()>& run, int64_t batch, const TimingSettings& s) {
  for (int i = 0; i < s.warmup_runs; ++i) run();
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (static_cast<int>(ms.size()) < s.max_runs) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (static_cast<int>(ms.size()) >= s.min_runs && std::chrono::duration<double>(t1 - start).count() > s.max_seconds)
      break;
  }
  LatencyStats out;
  out.runs = static_cast<int64_t>(ms.size());
  double total = 0;
  for (double v : ms) total += v;
  out.mean_ms = total / static_cast<double>(ms.size());
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))]; };
  out.p50_ms = pct(0.50);
  out.p90_ms = pct(0.90);
  out.p99_ms = pct(0.99);
  out.samples_per_s = static_cast<double>(batch) * 1000.0 / out.mean_ms;
  return out;
}

Tensor random_model_input(const Graph& g, int64_t batch, uint64_t seed) {
  Shape s = g.input_sample_shape(g.inputs().at(0));
  s.insert(s.begin(), batch);
  Tensor x = Tensor::empty(s);
  Rng rng(seed);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  return x;
}

int64_t heap_bytes_in_use() {
  struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

}  // namespace leanai
