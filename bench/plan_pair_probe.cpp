// Two models compiled into Plans in one process and timed in turns at one
// batch size: per round, each model's p50 over RUNS calls; prints the median
// of the per-round ratios (first over second) and each model's median p50.
// Timing both in one process keeps a slow spell of a shared machine on both
// sides of every ratio. Build it against two libleanai.a builds to compare a
// change (the fp32 CNN figure in docs/benchmarks.md: a model's fp32 and
// mixed plans at batch 256, 9 rounds of 20 runs, two runs of each build).
//
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/plan_pair_probe.cpp build/libleanai.a \
//       -lhwy -ldnnl -lfmt -lz -lprotobuf -o /tmp/pair
//   /tmp/pair A.leanai B.leanai BATCH ROUNDS RUNS
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "leanai/core/rng.h"
#include "leanai/io/model_file.h"
#include "leanai/runtime/plan.h"
#include "probe_timing.h"

namespace {

double p50_us(leanai::Plan& plan, const leanai::Tensor& x, int runs) {
  return leanai::probe::percentile_us([&] { plan.run(x); }, 0.5, runs);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s A.leanai B.leanai BATCH ROUNDS RUNS\n", argv[0]);
    return 2;
  }
  const int64_t batch = std::atoll(argv[3]);
  const int rounds = std::atoi(argv[4]), runs = std::atoi(argv[5]);
  leanai::CompileOptions options;
  options.threads = 2;
  const leanai::LoadedModel a = leanai::load_model(argv[1]), b = leanai::load_model(argv[2]);
  leanai::Plan plan_a(a.graph, options), plan_b(b.graph, options);
  leanai::Shape shape = a.graph.input_sample_shape(a.graph.inputs()[0]);
  shape.insert(shape.begin(), batch);
  leanai::Tensor x = leanai::Tensor::empty(shape);
  leanai::Rng rng(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  p50_us(plan_a, x, 50);  // compiles and warms both
  p50_us(plan_b, x, 50);
  std::vector<double> ratio, ta, tb;
  for (int r = 0; r < rounds; ++r) {
    ta.push_back(p50_us(plan_a, x, runs));
    tb.push_back(p50_us(plan_b, x, runs));
    ratio.push_back(ta.back() / tb.back());
  }
  std::printf("ratio median %.3f  a %.2f us  b %.2f us\n", median(ratio), median(ta), median(tb));
}
