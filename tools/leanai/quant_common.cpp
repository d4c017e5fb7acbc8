#include "quant_common.h"

#include <set>

#include <fmt/format.h>

#include "leanai/core/error.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/quant/quantize_graph.h"

namespace leanai::cli {

void QuantDataOptions::add_to(CLI::App& cmd) {
  data.add_to(cmd, false);
  cmd.add_option("--calib", data.spec, "data to calibrate on (default: the model's own data set); same forms as --data");
  cmd.add_option("--calib-samples", calib_samples, "training samples to calibrate activation ranges on")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20))->capture_default_str();
  cmd.add_option("--val-samples", val_samples, "validation samples plans are checked on")
      ->check(CLI::Range(int64_t{100}, int64_t{1} << 22))->capture_default_str();
  cmd.add_option("--calibrator", calibrator,
                 "activation range per layer: auto (whichever of the others gives the layer's output the least error), "
                 "minmax, percentile, entropy or mse")
      ->check(CLI::IsMember({"auto", "minmax", "percentile", "entropy", "mse"}))->capture_default_str();
  cmd.add_flag("--dynamic", dynamic, "int8 layers compute their input's scale per batch at run time (no static ranges)");
  cmd.add_option("--dynamic-layers", dynamic_layers,
                 "only these int8 layers (comma-separated names, as the sensitivity table lists them) compute their "
                 "input's scale per batch; the others keep calibrated static ranges")
      ->delimiter(',')
      ->excludes("--dynamic");
  cmd.add_option("-t,--threads", threads, "threads (0 = all cores)")->capture_default_str();
  cmd.add_option("--seed", seed, "seed for drawing calibration and validation samples")->capture_default_str();
}

namespace {

// --dynamic-layers names, checked against the model's layers before any work.
void check_layer_names(const Graph& inference, const std::vector<std::string>& names) {
  std::set<std::string> layers;
  std::string known;
  for (const Node& n : inference.nodes())
    if (std::string name = layer_name(inference, n); !name.empty() && layers.insert(name).second)
      known += (known.empty() ? "" : ", ") + name;
  for (const std::string& name : names)
    check(layers.count(name) > 0, "--dynamic-layers: the model has no layer '" + name + "' (its layers: " + known + ")");
}

}  // namespace

QuantSetup prepare_quantization(const std::string& model_path, const QuantDataOptions& o, const CLI::App& cmd) {
  apply_threads(o.threads);
  QuantSetup s;
  s.model = load_model(model_path);
  // An imported model may not say its task; the labelled data then decides.
  const std::string task = s.model.info.value("task", std::string("classification"));
  check(task == "classification" || task == "unspecified",
        "quantization measures accuracy, so it needs a classification model (this one is " + task + ")");
  DataOptions data = o.data;
  // --calib names the data set as --data does.
  const bool data_given = cmd.count("--data") > 0 || cmd.count("--calib") > 0;
  s.data = load_model_data(s.model.info, data, cmd, data_given);
  s.inference = optimize_for_inference(s.model.graph);
  check_layer_names(s.inference, o.dynamic_layers);
  s.samples = quantization_samples(*s.data.train, s.data.validation.get(), o.calib_samples, o.val_samples, o.seed);
  CalibrationOptions c;
  c.method = o.calibrator;
  s.quant = calibrate_layers(s.inference, s.samples.calibration.x, c, o.dynamic);
  for (const std::string& name : o.dynamic_layers) s.quant.at(name).dynamic = true;
  return s;
}

std::string describe_samples(const QuantSetup& s) {
  return fmt::format("calibration: {} training samples; validation: {} samples from {}; test: {} samples (reported only)",
                     s.samples.calibration.size(), s.samples.validation.size(),
                     s.samples.validation_seen_in_training ? "the training split (the model has no validation split: "
                                                             "train with --val-fraction for an unseen one)"
                                                           : "the model's validation split",
                     s.data.test->size());
}

}  // namespace leanai::cli
