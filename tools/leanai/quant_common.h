// What `leanai quantize` and `leanai sensitivity` share: their data and
// calibration options, and the setup both start from (the model, its data as
// it was split in training, calibration and validation samples, the
// calibrated int8 setting of every layer).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_common.h"
#include "leanai/io/model_file.h"
#include "leanai/quant/mixed_precision.h"

namespace leanai::cli {

struct QuantDataOptions {
  DataOptions data;
  int64_t calib_samples = 1024;
  int64_t val_samples = 5000;
  std::string calibrator = "auto";
  bool dynamic = false;               // every int8 layer
  std::vector<std::string> dynamic_layers;  // or only these
  int threads = 0;
  uint64_t seed = 0;
  void add_to(CLI::App& cmd);
};

struct QuantSetup {
  LoadedModel model;
  ModelData data;
  Graph inference;  // optimize_for_inference(model.graph)
  QuantizationSamples samples;
  std::map<std::string, LayerQuant> quant;  // per layer: calibrated int8 input params
};
QuantSetup prepare_quantization(const std::string& model_path, const QuantDataOptions& o, const CLI::App& cmd);

// One line saying where the samples came from, for the printed report.
std::string describe_samples(const QuantSetup& s);

}  // namespace leanai::cli
