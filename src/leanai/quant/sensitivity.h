// Sensitivity analysis: how much each layer suffers, and how much faster and
// smaller it gets, at each precision, measured one layer at a time.
//
//   SensitivityReport r = analyze_sensitivity(model, calibration, data, {});
//   r.layers  // most sensitive first: per precision KL, SQNR, accuracy change, Fisher, bytes, latency
//
// For each conv2d / linear layer of the inference graph and each precision,
// only that layer is quantized (quantize_graph) and the compiled model runs
// the sample set; against the fp32 outputs that gives
//   kl               mean KL(fp32 softmax || quantized softmax), nats
//   sqnr_db          signal-to-quantization-noise ratio of the logits
//   accuracy_change  points of accuracy on the sample set (negative = lost)
// plus a Fisher proxy, 0.5 * sum_i F_i (w_i - q(w_i))^2 with F the mean
// squared loss gradient of each weight (empirical Fisher on the same samples;
// per-channel weight scaling such as folded batch-norm leaves it unchanged,
// so it is taken on the trained weights), the layer's weight bytes, and its
// latency in context: with every other layer at int8, how much the model's
// time changes when this layer moves to that precision, plus an equal share of
// the all-int8 time (so the shares add up to the model's time, and the
// quantize/dequantize steps a move adds are charged to that layer), with how
// far apart the repeated timings of that change were.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "leanai/graph/graph.h"
#include "leanai/quant/precision.h"
#include "leanai/quant/precision_solver.h"
#include "leanai/quant/quantize_graph.h"

namespace leanai {

struct PrecisionMeasure {
  Precision precision = Precision::fp32;
  bool available = true;  // false: the layer cannot run at it (e.g. int4 for a conv)
  double kl = 0, sqnr_db = 0, accuracy_change = 0, fisher = 0, bytes = 0, latency_ms = 0;
  double latency_noise_ms = 0;  // half the range of the paired timings latency_ms is the median of
};

struct LayerSensitivity {
  std::string layer, op;
  int64_t weights = 0;
  std::vector<PrecisionMeasure> at;  // fp32 first
  const PrecisionMeasure* find(Precision p) const;
};

struct SensitivityReport {
  double fp32_accuracy = 0;
  int64_t samples = 0, latency_batch = 0;
  std::vector<LayerSensitivity> layers;  // sorted: largest int8 KL first
  json to_json() const;
  static SensitivityReport from_json(const json& j);  // throws Error naming what is missing
  static SensitivityReport read(const std::string& path);  // a file from to_json
  // The solver's input: drop = points lost (clamped at 0), bytes, latency.
  std::vector<LayerCosts> costs() const;
};

struct SensitivityOptions {
  std::vector<Precision> precisions = {Precision::bf16, Precision::fp16, Precision::int8, Precision::int4};
  int64_t latency_batch = 256;
  double latency_seconds = 0.3;  // per layer and precision
};

// `model`: the float model as trained. `quant`: per layer (by name) how int8
// quantizes its input (from calibration; every conv2d / linear layer must be
// there); its precision field is ignored. x [N, ...], labels i64 [N].
SensitivityReport analyze_sensitivity(const Graph& model, const std::map<std::string, LayerQuant>& quant,
                                      const Tensor& x, const Tensor& labels, const SensitivityOptions& options = {});

// Weight bytes of a layer stored at a precision (weights, scales, f32 bias).
double layer_bytes(int64_t weights, int64_t out_channels, Precision p, int int4_block = 32);

}  // namespace leanai
