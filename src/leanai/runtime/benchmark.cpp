#include "leanai/runtime/benchmark.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "leanai/core/rng.h"

namespace leanai {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

LatencyStats stats_of(std::vector<double> ms, int64_t batch) {
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

}  // namespace

LatencyStats time_runs(const std::function<void()>& run, int64_t batch, const TimingSettings& s) {
  for (int i = 0; i < s.warmup_runs; ++i) run();
  std::vector<double> ms;
  const auto start = Clock::now();
  while (static_cast<int>(ms.size()) < s.max_runs) {
    const auto t0 = Clock::now();
    run();
    const auto t1 = Clock::now();
    ms.push_back(ms_since(t0, t1));
    if (static_cast<int>(ms.size()) >= s.min_runs && std::chrono::duration<double>(t1 - start).count() > s.max_seconds)
      break;
  }
  return stats_of(std::move(ms), batch);
}

std::vector<LatencyStats> time_interleaved(const std::vector<std::function<void()>>& runs, int64_t batch,
                                           const TimingSettings& s) {
  // A block lasts about this long; each starts with untimed runs, since the
  // runner before it has moved its own weights into the caches.
  constexpr double kBlockMs = 5.0;
  constexpr int kBlockWarmup = 2;
  const size_t n = runs.size();
  std::vector<std::vector<double>> ms(n);
  std::vector<int> block_runs(n);
  for (size_t r = 0; r < n; ++r) {
    for (int i = 0; i < s.warmup_runs; ++i) runs[r]();
    const auto t0 = Clock::now();
    runs[r]();
    block_runs[r] = static_cast<int>(std::clamp(kBlockMs / std::max(ms_since(t0, Clock::now()), 1e-6), 1.0, 1000.0));
  }
  auto done = [&](size_t r, double seconds) {
    const int count = static_cast<int>(ms[r].size());
    return count >= s.max_runs || (count >= s.min_runs && seconds > s.max_seconds * static_cast<double>(n));
  };
  const auto start = Clock::now();
  for (bool all_done = false; !all_done;) {
    all_done = true;
    for (size_t r = 0; r < n; ++r) {
      if (done(r, std::chrono::duration<double>(Clock::now() - start).count())) continue;
      all_done = false;
      for (int i = 0; i < kBlockWarmup; ++i) runs[r]();
      for (int i = 0; i < block_runs[r] && static_cast<int>(ms[r].size()) < s.max_runs; ++i) {
        const auto t0 = Clock::now();
        runs[r]();
        ms[r].push_back(ms_since(t0, Clock::now()));
      }
    }
  }
  std::vector<LatencyStats> out;
  for (auto& m : ms) out.push_back(stats_of(std::move(m), batch));
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
