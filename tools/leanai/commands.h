// The subcommands: each registers its options on the app and runs through the
// library. main() turns a leanai::Error into one line and a non-zero exit.
#pragma once
#include <CLI/CLI.hpp>

namespace leanai::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_import_command(CLI::App& app);
void add_export_onnx_command(CLI::App& app);
void add_hw_command(CLI::App& app);
void add_value_command(CLI::App& app);
void add_sensitivity_command(CLI::App& app);
void add_quantize_command(CLI::App& app);

}  // namespace leanai::cli
