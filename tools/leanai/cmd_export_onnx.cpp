// leanai export-onnx: write a saved model (float or quantized) as an ONNX file
// for ONNX Runtime and other tools; see io/onnx_export.h for what each op becomes.
// The model file's info travels along as metadata ("leanai.info", JSON), so the
// task and the input preprocessing are not lost.
#include <filesystem>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/io/atomic_file.h"
#include "leanai/io/model_file.h"
#include "leanai/io/onnx_export.h"

namespace leanai::cli {
namespace {

struct ExportOnnxOptions {
  std::string model;
  std::string out;
  int opset = 13;
  bool fixed_batch = false;
  bool json = false;
};

void run_export_onnx(const ExportOnnxOptions& o) {
  LoadedModel m = load_model(o.model);
  ExportOptions options;
  options.opset = o.opset;
  options.dynamic_batch = !o.fixed_batch;
  options.metadata["leanai.info"] = m.info.dump();
  const OnnxExport e = build_onnx_export(m.graph, options);
  write_file_atomic(o.out, [&](std::FILE* f) { write_bytes(f, e.bytes.data(), e.bytes.size(), o.out); });

  int nodes = 0;
  std::string ops;
  for (const auto& [type, count] : e.op_counts) {
    nodes += count;
    ops += fmt::format("{}{} {}", ops.empty() ? "" : ", ", type, count);
  }
  if (o.json)
    return print_json({{"event", "export-onnx"},
                       {"model", o.model},
                       {"out", o.out},
                       {"opset", o.opset},
                       {"nodes", nodes},
                       {"ops", e.op_counts},
                       {"weight_bytes", e.weight_bytes},
                       {"file_bytes", e.bytes.size()}});
  std::fputs(fmt::format("exported {} to {} (ONNX opset {}): {} nodes ({}), {:.1f} KB of weights\n", o.model, o.out,
                         o.opset, nodes, ops, e.weight_bytes / 1024.0)
                 .c_str(),
             stdout);
}

}  // namespace

void add_export_onnx_command(CLI::App& app) {
  auto opt = std::make_shared<ExportOnnxOptions>();
  CLI::App* cmd = app.add_subcommand("export-onnx", "Write a leanai model (float or quantized) as an ONNX file");
  cmd->add_option("model", opt->model, "the leanai model file")->required();
  cmd->add_option("-o,--out", opt->out, "the .onnx file to write (atomically)")->required();
  cmd->add_option("--opset", opt->opset, "ONNX opset to declare")->check(CLI::Range(13, 17))->capture_default_str();
  cmd->add_flag("--fixed-batch", opt->fixed_batch, "fix the batch axis at 1 instead of a symbolic N");
  cmd->add_flag("--json", opt->json, "one JSON object on stdout");
  cmd->callback([opt] { run_export_onnx(*opt); });
}

}  // namespace leanai::cli
