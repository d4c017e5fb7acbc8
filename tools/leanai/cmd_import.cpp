// leanai import: convert an ONNX model into a leanai model file.
//
// The model file's info records where the model came from ("source": format,
// file, producer, opset...), its sample shape and output width. An ONNX file
// says nothing about the task or the input preprocessing, so neither is
// guessed: without --task the task is "unspecified" (predict prints the raw
// outputs), and predict takes raw float32 input that is already preprocessed.
#include <filesystem>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/graph/executor.h"
#include "leanai/io/model_file.h"
#include "leanai/io/onnx_import.h"

namespace leanai::cli {
namespace {

struct ImportOptions {
  std::string input;
  std::string out;
  std::string task = "unspecified";
  bool json = false;
};

void run_import(const ImportOptions& o) {
  OnnxModel m = import_onnx_file(o.input);
  Graph& g = m.graph;
  const Shape sample = g.input_sample_shape(g.inputs()[0]);
  // One forward pass at batch 1 on zeros: proves the graph runs, and gives the output shape.
  Shape one = sample;
  one.insert(one.begin(), 1);
  Executor ex(g);
  const Shape out_shape = ex.forward({Tensor::zeros(one)}).shape();
  const Shape out_sample(out_shape.begin() + 1, out_shape.end());
  int64_t ops = 0, buffers = 0;
  for (const Node& n : g.nodes()) ops += n.op != "input" && n.op != "param";
  for (auto& [name, p] : g.params())
    if (!p.trainable) buffers += p.value.numel();

  m.source["file"] = std::filesystem::path(o.input).filename().string();
  json info = {{"task", o.task},
               {"sample_shape", sample},
               {"output_shape", out_sample},
               {"num_outputs", shape_numel(out_sample)},
               {"model", "onnx"},
               {"source", m.source}};
  save_model(o.out, g, info);

  json summary = {{"event", "import"},
                  {"input", o.input},
                  {"out", o.out},
                  {"opset", m.source["opset"]},
                  {"producer", m.source["producer"]},
                  {"onnx_nodes", m.source["onnx_nodes"]},
                  {"ops", ops},
                  {"parameters", g.num_trainable_parameters()},
                  {"buffers", buffers},
                  {"input_shape", sample},
                  {"output_shape", out_sample},
                  {"task", o.task}};
  if (o.json) return print_json(summary);
  const std::string producer = m.source.value("producer", std::string());
  // "[batch, 1, 28, 28]" from a sample shape.
  auto batched = [](const Shape& s) { return s.empty() ? std::string("[batch]") : fmt::format("[batch, {}", shape_str(s).substr(1)); };
  std::fputs(fmt::format("imported {} ({}, opset {}): {} ONNX nodes -> {} ops, {} parameters (+{} buffers), input {} -> "
                         "output {}; wrote {}\n",
                         o.input, producer.empty() ? "unknown producer" : producer, m.source["opset"].get<int>(),
                         m.source["onnx_nodes"].get<int64_t>(), ops, g.num_trainable_parameters(), buffers,
                         batched(sample), batched(out_sample), o.out)
                 .c_str(),
             stdout);
}

}  // namespace

void add_import_command(CLI::App& app) {
  auto opt = std::make_shared<ImportOptions>();
  CLI::App* cmd = app.add_subcommand("import", "Convert an ONNX model (opsets 11-17) into a leanai model file");
  cmd->add_option("model", opt->input, "the .onnx file")->required();
  cmd->add_option("-o,--out", opt->out, "the leanai model file to write (atomically)")->required();
  cmd->add_option("--task", opt->task,
                  "what the output is: classification (logits; predict then prints class probabilities), "
                  "regression, or unspecified (predict prints the raw outputs)")
      ->check(CLI::IsMember({"classification", "regression", "unspecified"}))
      ->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON object on stdout");
  cmd->callback([opt] { run_import(*opt); });
}

}  // namespace leanai::cli
