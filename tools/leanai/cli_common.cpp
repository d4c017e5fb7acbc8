#include "cli_common.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/data/split.h"
#include "leanai/data/standardizer.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/models.h"

namespace leanai::cli {

void DataOptions::add_to(CLI::App& cmd, bool with_defaults) {
  auto* d = cmd.add_option("--data", spec,
                           "'fashion-mnist', a directory of MNIST-style IDX files, or a .csv file");
  if (with_defaults) d->capture_default_str();
  cmd.add_option("--label", label, "CSV: the label column (default: the last column)");
  cmd.add_option("--task", task, "CSV: classification or regression")->check(CLI::IsMember({"classification", "regression"}));
  cmd.add_flag("--no-standardize", no_standardize, "CSV: keep features unscaled");
  cmd.add_option("--test-fraction", test_fraction, "CSV: share of rows held out as the test split")
      ->check(CLI::Range(0.01, 0.9))
      ->capture_default_str();
}

CsvOptions DataOptions::csv() const {
  CsvOptions o;
  o.label_column = label;
  o.task = parsed_task();
  o.standardize = !no_standardize;
  return o;
}

Task DataOptions::parsed_task() const { return task == "regression" ? Task::regression : Task::classification; }

LoadedData load_data(const DataOptions& opt, uint64_t seed) {
  LoadedData d;
  d.source = resolve_data(opt.spec, opt.csv());
  d.splits = prepare_splits(d.source, opt.test_fraction, seed);
  return d;
}

ModelData load_model_data(const json& info, DataOptions o, const CLI::App& cmd, bool data_given) {
  // The model remembers its data set and split; flags given here win.
  const DataOptions saved = data_options_from_info(info);
  if (cmd.count("--data") == 0 && !data_given) o.spec = saved.spec;
  if (cmd.count("--label") == 0) o.label = saved.label;
  if (cmd.count("--task") == 0) o.task = saved.task;
  if (cmd.count("--no-standardize") == 0) o.no_standardize = saved.no_standardize;
  if (cmd.count("--test-fraction") == 0) o.test_fraction = saved.test_fraction;
  const json data_info = info.value("data", json::object());
  const uint64_t seed = data_info.value("split_seed", uint64_t{0});
  // Features are scaled with the standardizer saved in the model, never one
  // refitted on the evaluation data.
  const json saved_scaler = data_info.value("standardizer", json());
  const bool use_saved_scaler = !saved_scaler.is_null() && !o.no_standardize;
  if (use_saved_scaler) o.no_standardize = true;
  ModelData md;
  md.data = load_data(o, seed);
  md.train = md.data.splits.train;
  md.test = md.data.splits.test;
  const double val_fraction = info.value("val_fraction", 0.0);
  if (val_fraction > 0.0) {
    const uint64_t train_seed = info.value("training", json::object()).value("config", json::object()).value("seed", seed);
    std::tie(md.train, md.validation) = train_val_split(*md.train, val_fraction, train_seed);
  }
  for (auto* ds : {&md.train, &md.validation, &md.test}) {
    if (!*ds) continue;
    if (use_saved_scaler) {
      const Standardizer scaler = Standardizer::from_json(saved_scaler);
      check(scaler.num_features() == shape_numel((*ds)->sample_shape()),
            fmt::format("the data has {} features but the model's standardizer expects {}",
                        shape_numel((*ds)->sample_shape()), scaler.num_features()));
      *ds = scaler.apply(**ds);
    }
    const Shape expected = info.value("sample_shape", (*ds)->sample_shape());
    check((*ds)->sample_shape() == expected, fmt::format("the data has samples of shape {} but the model expects {}",
                                                         shape_str((*ds)->sample_shape()), shape_str(expected)));
  }
  // Class ids come from the data file; they mean the same only if the classes do.
  const auto model_classes = data_info.value("class_names", std::vector<std::string>{});
  check(model_classes.empty() || md.data.source.class_names.empty() || model_classes == md.data.source.class_names,
        "the data's classes differ from the classes the model was trained on; use data with the same classes");
  return md;
}

json data_info(const DataOptions& opt, const LoadedData& data, uint64_t seed) {
  const DataSource& src = data.source;
  json j = {{"spec", opt.spec}, {"task", opt.task}, {"label", opt.label}, {"standardize", !opt.no_standardize},
            {"test_fraction", opt.test_fraction}, {"split_seed", seed}, {"description", src.description},
            {"class_names", src.class_names}, {"feature_names", src.feature_names}};
  if (data.splits.standardizer) j["standardizer"] = data.splits.standardizer->to_json();
  return j;
}

DataOptions data_options_from_info(const json& info) {
  DataOptions o;
  const json d = info.value("data", json::object());
  o.spec = d.value("spec", o.spec);
  o.task = d.value("task", o.task);
  o.label = d.value("label", o.label);
  o.no_standardize = !d.value("standardize", true);
  o.test_fraction = d.value("test_fraction", o.test_fraction);
  return o;
}

Graph build_model(const std::string& model, const Shape& sample_shape, int64_t num_outputs, uint64_t seed) {
  if (is_preset(model)) return build_preset(model, sample_shape, num_outputs, seed);
  // Preset names have no '.' or '/': anything with one is a path.
  const bool looks_like_file = model.find('/') != std::string::npos || model.find('.') != std::string::npos ||
                               std::filesystem::exists(model);
  if (!looks_like_file) return build_preset(model, sample_shape, num_outputs, seed);  // error lists the presets
  check(std::filesystem::exists(model), "cannot open model spec '" + model +
                                            "': no such file (give a JSON spec, a model file, or a preset: mlp, cnn, cnn-bn)");
  return build_from_spec(read_spec_file(model), sample_shape, num_outputs, seed);
}

Shape parse_shape(const std::string& text, const std::string& option) {
  Shape out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    check(!part.empty() && end && *end == '\0' && v > 0 && v < (1 << 24),
          option + " must be positive integers separated by commas, e.g. 1,28,28");
    out.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

Graph load_model_graph(const std::string& model, const std::string& input_shape, int64_t classes, json* info) {
  if (std::filesystem::is_regular_file(model) && !model.ends_with(".json")) {
    LoadedModel m = load_model(model);
    if (info) *info = m.info;
    return m.graph;
  }
  return build_model(model, parse_shape(input_shape, "--input-shape"), classes, 0);
}

void apply_threads(int threads) {
  check(threads >= 0 && threads <= 1024, "--threads must be between 0 (all cores) and 1024");
  set_num_threads(threads);
}

void print_json(const json& j) {
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

}  // namespace leanai::cli
