#include "leanai/quant/plan_eval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "leanai/core/error.h"
#include "leanai/hw/microbench.h"
#include "leanai/runtime/benchmark.h"
#include "leanai/runtime/plan.h"

namespace leanai {

Tensor plan_logits(const Graph& graph, const Tensor& x, int64_t batch) {
  check(!x.shape().empty() && x.shape()[0] > 0, "evaluation: no samples");
  Plan plan(graph);
  const int64_t n = x.shape()[0];
  Tensor out;
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    const Tensor& y = plan.run(x.slice0(begin, end));
    if (!out.defined()) {
      Shape s = y.shape();
      s[0] = n;
      out = Tensor::empty(s);
    }
    const int64_t row = y.numel() / (end - begin);
    std::memcpy(out.data<float>() + begin * row, y.data<float>(), sizeof(float) * y.numel());
  }
  return out;
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.shape()[0], c = logits.numel() / n;
  check(labels.dtype() == DType::i64 && labels.numel() == n, "evaluation: labels must be i64, one per row");
  const float* l = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) right += std::max_element(l + i * c, l + (i + 1) * c) - (l + i * c) == y[i];
  return static_cast<double>(right) / static_cast<double>(n);
}

OutputError compare_logits(const Tensor& ref, const Tensor& out) {
  check(ref.shape() == out.shape(), "evaluation: outputs differ in shape");
  const int64_t n = ref.shape()[0], c = ref.numel() / n;
  const float *r = ref.data<float>(), *o = out.data<float>();
  double kl = 0, signal = 0, noise = 0;
  std::vector<double> p(c), q(c);
  for (int64_t i = 0; i < n; ++i) {
    const float* ri = r + i * c;
    const float* oi = o + i * c;
    // log-softmax of both rows, then KL(p || q) = sum p (log p - log q).
    const double rm = *std::max_element(ri, ri + c), om = *std::max_element(oi, oi + c);
    double rs = 0, os = 0;
    for (int64_t j = 0; j < c; ++j) {
      rs += std::exp(ri[j] - rm);
      os += std::exp(oi[j] - om);
    }
    const double rl = rm + std::log(rs), ol = om + std::log(os);
    for (int64_t j = 0; j < c; ++j) {
      const double lp = ri[j] - rl, lq = oi[j] - ol;
      kl += std::exp(lp) * (lp - lq);
      signal += static_cast<double>(ri[j]) * ri[j];
      noise += static_cast<double>(ri[j] - oi[j]) * (ri[j] - oi[j]);
    }
  }
  OutputError e;
  e.kl = std::max(0.0, kl / static_cast<double>(n));
  e.sqnr_db = noise > 0 ? 10.0 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
  return e;
}

double plan_latency_ms(const Graph& graph, int64_t batch, double seconds) {
  Plan plan(graph);
  const Tensor x = random_model_input(plan.graph(), batch);
  TimingSettings t;
  t.warmup_runs = 3;
  t.min_runs = 5;
  t.max_seconds = seconds;
  return time_runs([&] { plan.run(x); }, batch, t).p50_ms;
}

std::vector<double> side_by_side_latency_ms(const std::vector<const Graph*>& graphs, int64_t batch, int rounds,
                                            double seconds) {
  check(rounds >= 1, "side-by-side timing: rounds must be >= 1");
  std::vector<std::vector<double>> times(graphs.size());
  for (int round = 0; round < rounds; ++round)
    for (size_t i = 0; i < graphs.size(); ++i) times[i].push_back(plan_latency_ms(*graphs[i], batch, seconds));
  std::vector<double> medians;
  for (const std::vector<double>& t : times) medians.push_back(median_of(t));
  return medians;
}

}  // namespace leanai
