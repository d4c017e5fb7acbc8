// Static calibration of a float graph: the input range of every conv2d and
// linear layer, chosen per layer by what it does to the layer's output.
//
//   Graph g = optimize_for_inference(model);
//   for (const LayerCalibration& c : calibrate_graph(g, batches, {}))
//     ... c.layer ("layer1.conv1"), c.params (the node's attrs.input), c.method
//
// 1. The Executor runs every batch; each layer's data input (input 0) feeds
//    an ActivationHistogram (min, max, channel means, histogram).
// 2. Each calibrator proposes a range. On the first `eval_batches` batches
//    the layer's own kernel (with its fused post-ops) runs on the input
//    fake-quantized with each proposal and float weights; the proposal whose
//    output is closest (MSE) to the float output wins. Ties go to the earlier
//    method in minmax, percentile, entropy, mse order.
// Layers are measured alone (each sees float inputs), so a choice does not
// depend on the others', except that layers reading one tensor take one
// range: the candidate whose output errors, each relative to that layer's
// best, add up least (the runtime then quantizes the tensor once for all).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "leanai/core/tensor.h"
#include "leanai/graph/graph.h"
#include "leanai/quant/calibrators.h"

namespace leanai {

struct CalibrationOptions {
  std::string method = "auto";  // "auto" (least output MSE) or a method name to use for every layer
  int bins = 2048;              // histogram bins
  CalibratorOptions calibrator;
  int eval_batches = 2;  // the first batches, where output MSE is measured
};

struct LayerCalibration {
  std::string layer;  // the weight parameter's name without ".weight"
  QuantParams params;
  std::string method;
  std::map<std::string, double> output_mse;  // per method tried: mean squared error of the layer's output
  std::vector<float> channel_mean;           // of the input, axis 1 (bias correction)
  float min = 0.0f, max = 0.0f;              // of the input, observed
};

// `batches` are values of the graph's one input, each [N, ...]. Layers come in
// graph order. Throws Error on no batches, several graph inputs or an unknown method.
std::vector<LayerCalibration> calibrate_graph(const Graph& graph, const std::vector<Tensor>& batches,
                                              const CalibrationOptions& options = {});

}  // namespace leanai
