// Helpers shared by the subcommands: threads, data loading as a saved model
// expects it, model construction from a preset or a spec, JSON output.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "leanai/data/data_source.h"
#include "leanai/graph/graph.h"

namespace leanai::cli {

// Options naming a data set, shared by train, eval and predict.
struct DataOptions {
  std::string spec = "fashion-mnist";
  std::string label;          // CSV label column
  std::string task = "classification";
  bool no_standardize = false;
  double test_fraction = 0.2;  // CSV only: held out as the test split
  void add_to(CLI::App& cmd, bool with_defaults);
  CsvOptions csv() const;
  Task parsed_task() const;
};

struct LoadedData {
  DataSource source;
  PreparedData splits;  // train and test, with a CSV's standardizer fitted on train only
};
LoadedData load_data(const DataOptions& opt, uint64_t seed);

// What a saved model records about its data, so eval/predict repeat it exactly.
json data_info(const DataOptions& opt, const LoadedData& data, uint64_t seed);
// Rebuilds the options from that record (the user's flags override it when given).
DataOptions data_options_from_info(const json& info);

// A saved model's data as it was split and scaled in training: the data set
// and split the model records (flags given on `cmd` win), features scaled with
// the model's own standardizer, shapes and classes checked against the model.
// `validation` is the training split's validation part when the model was
// trained with --val-fraction (empty otherwise); `train` is what is left.
struct ModelData {
  LoadedData data;
  std::shared_ptr<InMemoryDataset> train, validation, test;
};
ModelData load_model_data(const json& info, DataOptions o, const CLI::App& cmd, bool data_given = false);

// `model` is a preset name or a path to a JSON spec.
Graph build_model(const std::string& model, const Shape& sample_shape, int64_t num_outputs, uint64_t seed);

// A shape given on the command line: positive integers separated by commas.
Shape parse_shape(const std::string& text, const std::string& option);

// A saved model file, or else a preset / JSON spec built for `input_shape`
// ("1,28,28") and `classes` outputs with seed 0. Fills *info from a file.
Graph load_model_graph(const std::string& model, const std::string& input_shape, int64_t classes, json* info = nullptr);

// Threads for every kernel; 0 = all cores. Validates the value.
void apply_threads(int threads);

void print_json(const json& j);  // one line on stdout

}  // namespace leanai::cli
