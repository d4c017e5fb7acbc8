// What the quantization tests share: calibrating each layer of an inference
// graph on a batch (static u8 params from the input's range, per-channel
// means) and building the quantize pass's layer map from it.
#pragma once
#include <map>

#include "leanai/graph/executor.h"
#include "leanai/quant/quantize_graph.h"

namespace leanai::test_support {

inline std::map<std::string, LayerQuant> calibrate_layers(const Graph& g, const Tensor& x, Precision precision,
                                                          bool dynamic = false, bool bias_correction = false) {
  Graph copy = g;
  Executor ex(copy);
  ex.forward({x});
  std::map<std::string, LayerQuant> layers;
  for (const Node& n : g.nodes()) {
    const std::string name = layer_name(g, n);
    if (name.empty()) continue;
    const Tensor& in = ex.value(n.inputs[0]);
    const float* p = in.data<float>();
    float lo = p[0], hi = p[0];
    for (int64_t i = 0; i < in.numel(); ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
    LayerQuant lq;
    lq.precision = precision;
    lq.dynamic = dynamic;
    lq.input = params_for_range(lo, hi, DType::u8);
    if (bias_correction) {
      // Channels are axis 1 (features of a 2-D input, channels of a 4-D one).
      const int64_t c = in.dim(1), inner = in.numel() / (in.dim(0) * c);
      lq.input_channel_mean.assign(c, 0.0f);
      for (int64_t i = 0; i < in.numel(); ++i) lq.input_channel_mean[(i / inner) % c] += p[i];
      for (float& m : lq.input_channel_mean) m /= static_cast<float>(in.numel() / c);
    }
    layers[name] = lq;
  }
  return layers;
}

inline Tensor run_graph(const Graph& g, const Tensor& x) {
  Graph copy = g;
  Executor ex(copy);
  return ex.forward({x}).clone();
}

inline double argmax_agreement(const Tensor& a, const Tensor& b) {
  const int64_t rows = a.dim(0), cols = a.numel() / rows;
  int64_t same = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* pa = a.data<float>() + r * cols;
    const float* pb = b.data<float>() + r * cols;
    same += std::max_element(pa, pa + cols) - pa == std::max_element(pb, pb + cols) - pb;
  }
  return static_cast<double>(same) / static_cast<double>(rows);
}

}  // namespace leanai::test_support
