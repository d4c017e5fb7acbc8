// The steps from a trained float model to a mixed-precision one, as library
// calls `leanai quantize` and `leanai sensitivity` put together:
//
//   Graph inf = optimize_for_inference(model);
//   auto quant = calibrate_layers(inf, calib_x, {});              // int8 input params per layer
//   SensitivityReport s = analyze_sensitivity(model, quant, val_x, val_y);
//   SolvedPlan plan = solve_precisions(s.costs(), budget, evaluate_on(val));
//   Graph q = apply_precisions(inf, quant, layer_order(s), plan.assignment);
#pragma once
#include <map>
#include <string>
#include <vector>

#include "leanai/data/dataset.h"
#include "leanai/quant/calibrate_graph.h"
#include "leanai/quant/precision_solver.h"
#include "leanai/quant/quantize_graph.h"

namespace leanai {

// Rows of a dataset gathered into tensors: x [N, ...] and i64 labels [N].
struct SampleSet {
  Tensor x, labels;
  int64_t size() const { return x.shape().empty() ? 0 : x.shape()[0]; }
};
// The rows `rows` of `data`, in that order.
SampleSet gather_rows(const Dataset& data, const std::vector<int64_t>& rows);

// Where the samples come from: calibration rows are drawn from the training
// split (seeded); validation rows, which the solver checks its plans on, from
// the model's validation split when it has one, else from training rows not
// drawn for calibration (then `validation_seen_in_training` is set: the model
// trained on them, so drops measured there may be smaller than on new data).
// The test split is never touched here.
struct QuantizationSamples {
  SampleSet calibration, validation;
  bool validation_seen_in_training = false;
};
QuantizationSamples quantization_samples(const Dataset& train, const Dataset* validation, int64_t calibration_rows,
                                         int64_t validation_rows, uint64_t seed);

// Calibrates every conv2d / linear layer of an inference graph on calib_x (in
// batches of 256) and returns its int8 setting: static input params from the
// chosen calibrator (or dynamic ones when `dynamic`), channel means for bias correction.
std::map<std::string, LayerQuant> calibrate_layers(const Graph& inference_graph, const Tensor& calib_x,
                                                   const CalibrationOptions& options, bool dynamic = false);

// The inference graph with layer i of `layers` at assignment[i] (the int8
// settings from `quant`; other precisions use only its int4 block).
Graph apply_precisions(const Graph& inference_graph, const std::map<std::string, LayerQuant>& quant,
                       const std::vector<std::string>& layers, const Assignment& assignment);

// Bytes of every parameter of a graph as stored (what the model file holds).
int64_t parameter_bytes(const Graph& graph);

}  // namespace leanai
