// A chain of leanai's packed batch-1 layers (kernels/packed_gemm.h) on one
// core, without the runtime: median microseconds of 100,000 calls of the
// chain, then of each layer alone. Beside `leanai bench MODEL --batch 1`, it
// says how much of a small net's time is its kernels' and how much the plan's.
//
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/layer_chain_probe.cpp build/libleanai.a -lhwy -ldnnl -lfmt -o /tmp/chain
//   /tmp/chain 16 154 77 26      # widths: input, then each layer's outputs (ReLU between layers)
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "leanai/core/threads.h"
#include "leanai/kernels/packed_gemm.h"
#include "probe_timing.h"

using leanai::probe::percentile_us;
constexpr int kRuns = 100000;

struct Layer {
  int64_t n, k;
  leanai::Tensor packed;
  std::vector<float> bias;
};

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s INPUT OUT1 [OUT2 ...]\n", argv[0]);
    return 2;
  }
  std::vector<int64_t> widths;
  for (int i = 1; i < argc; ++i) widths.push_back(std::atoll(argv[i]));
  leanai::set_num_threads(1);
  std::vector<Layer> layers;
  std::vector<leanai::Tensor> values = {leanai::Tensor::empty({widths[0]})};
  for (int64_t i = 0; i < widths[0]; ++i) values[0].data<float>()[i] = 0.1f * static_cast<float>(i % 7);
  for (size_t l = 1; l < widths.size(); ++l) {
    const int64_t n = widths[l], k = widths[l - 1];
    std::vector<float> w(static_cast<size_t>(n * k));
    for (size_t j = 0; j < w.size(); ++j) w[j] = 0.01f * static_cast<float>(static_cast<int>(j * 37 % 11) - 5);
    Layer layer{n, k, leanai::Tensor::empty({leanai::packed_gemm_floats(n, k)}), std::vector<float>(n, 0.01f)};
    leanai::pack_gemm_weights(w.data(), n, k, layer.packed.data<float>());
    layers.push_back(std::move(layer));
    values.push_back(leanai::Tensor::empty({n}));
  }
  auto run_layer = [&](size_t l) {
    const Layer& L = layers[l];
    leanai::packed_gemm_by_panels(1, values[l].data<float>(), L.k, {L.packed.data<float>(), L.n, L.k}, L.bias.data(),
                                  l + 1 < layers.size(), values[l + 1].data<float>(), L.n, false);
  };
  auto chain = [&] {
    for (size_t l = 0; l < layers.size(); ++l) run_layer(l);
  };
  std::printf("chain p50 %.3f us\n", percentile_us(chain, 0.5, kRuns));
  for (size_t l = 0; l < layers.size(); ++l)
    std::printf("  layer %zu, %lld x %lld, alone: p50 %.3f us\n", l, static_cast<long long>(layers[l].n),
                static_cast<long long>(layers[l].k), percentile_us([&] { run_layer(l); }, 0.5, kRuns));
}
