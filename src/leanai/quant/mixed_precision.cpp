#include "leanai/quant/mixed_precision.h"

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/shuffle.h"

namespace leanai {

SampleSet gather_rows(const Dataset& data, const std::vector<int64_t>& rows) {
  check(!rows.empty(), "no samples to gather");
  check(data.task() == Task::classification, "quantization needs a classification model and labelled data");
  Shape xs = data.sample_shape();
  xs.insert(xs.begin(), static_cast<int64_t>(rows.size()));
  SampleSet s{Tensor::empty(xs), Tensor::empty({static_cast<int64_t>(rows.size())}, DType::i64)};
  data.gather(rows.data(), static_cast<int64_t>(rows.size()), s.x, s.labels);
  return s;
}

QuantizationSamples quantization_samples(const Dataset& train, const Dataset* validation, int64_t calibration_rows,
                                         int64_t validation_rows, uint64_t seed) {
  check(calibration_rows >= 1 && validation_rows >= 1, "calibration and validation need at least one sample each");
  Rng rng(seed);
  std::vector<int64_t> rows = iota_indices(train.size());
  shuffle_in_place(rows, rng);
  QuantizationSamples s;
  const int64_t nc = std::min<int64_t>(calibration_rows, train.size());
  s.calibration = gather_rows(train, {rows.begin(), rows.begin() + nc});
  if (validation && validation->size() > 0) {
    std::vector<int64_t> vrows = iota_indices(validation->size());
    shuffle_in_place(vrows, rng);
    vrows.resize(std::min<int64_t>(validation_rows, validation->size()));
    s.validation = gather_rows(*validation, vrows);
  } else {
    check(train.size() > nc, "the training split has no rows left for validation after calibration; "
                             "use fewer --calib-samples");
    const int64_t nv = std::min<int64_t>(validation_rows, train.size() - nc);
    s.validation = gather_rows(train, {rows.begin() + nc, rows.begin() + nc + nv});
    s.validation_seen_in_training = true;
  }
  return s;
}

std::map<std::string, LayerQuant> calibrate_layers(const Graph& inference_graph, const Tensor& calib_x,
                                                   const CalibrationOptions& options, bool dynamic) {
  std::vector<Tensor> batches;
  const int64_t n = calib_x.shape()[0];
  for (int64_t begin = 0; begin < n; begin += 256) batches.push_back(calib_x.slice0(begin, std::min(n, begin + 256)));
  std::map<std::string, LayerQuant> out;
  for (const LayerCalibration& c : calibrate_graph(inference_graph, batches, options)) {
    LayerQuant q;
    q.precision = Precision::int8;
    q.dynamic = dynamic;
    q.input = c.params;
    q.input_channel_mean = c.channel_mean;
    out[c.layer] = q;
  }
  return out;
}

Graph apply_precisions(const Graph& inference_graph, const std::map<std::string, LayerQuant>& quant,
                       const std::vector<std::string>& layers, const Assignment& assignment) {
  check(layers.size() == assignment.size(), "a precision plan needs one precision per layer");
  std::map<std::string, LayerQuant> chosen;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (assignment[i] == Precision::fp32) continue;
    const auto q = quant.find(layers[i]);
    check(q != quant.end(), "no calibration for layer '" + layers[i] + "'");
    LayerQuant lq = q->second;
    lq.precision = assignment[i];
    chosen[layers[i]] = lq;
  }
  return quantize_graph(inference_graph, chosen);
}

int64_t parameter_bytes(const Graph& graph) {
  int64_t bytes = 0;
  for (const auto& [name, p] : graph.params()) bytes += p.value.numel() * static_cast<int64_t>(dtype_size(p.value.dtype()));
  return bytes;
}

}  // namespace leanai
