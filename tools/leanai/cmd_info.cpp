// leanai info: layers, parameters, FLOPs per sample and size of a saved model
// or a preset. For a model with dynamic sparsity, FLOPs per sample are those
// of the dense model (every neuron and every block running), and the active
// FLOPs those it does at inference: after compact_gates has removed the
// neurons a neuron_gate or l0_gate switched off, with block_gated_linear
// layers running their top_k blocks plus the gate network.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "cli_common.h"
#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/models.h"
#include "leanai/sparse/input_gates.h"

namespace leanai::cli {
namespace {

struct InfoOptions {
  std::string model;
  std::string input_shape = "1,28,28";
  int64_t classes = 10;
  bool json = false;
};

void run_info(const InfoOptions& o) {
  json info;
  Graph g = load_model_graph(o.model, o.input_shape, o.classes, &info);
  const int64_t file_bytes =
      std::filesystem::is_regular_file(o.model) ? static_cast<int64_t>(std::filesystem::file_size(o.model)) : -1;
  Executor ex(g);
  // One forward pass at batch 1 on zeros, so ex.value() has each layer's output shape below.
  std::vector<Tensor> zeros;
  for (int id : g.inputs()) {
    Shape s = g.input_sample_shape(id);
    s.insert(s.begin(), 1);
    zeros.push_back(Tensor::zeros(s, g.input_dtype(id)));
  }
  ex.forward(zeros);
  const double flops = dense_flops_per_sample(g);
  json layers = json::array();
  for (const Node& n : g.nodes()) {
    if (n.op == "param") continue;
    json params = json::array();
    for (int i : n.inputs)
      if (g.node(i).op == "param") params.push_back(g.node(i).name);
    const Shape out = ex.value(n.id).shape();
    layers.push_back({{"id", n.id}, {"op", n.op}, {"output", Shape(out.begin() + 1, out.end())}, {"params", params}, {"attrs", n.attrs}});
  }
  int64_t param_bytes = 0, buffers = 0;
  for (auto& [name, p] : g.params()) {
    param_bytes += static_cast<int64_t>(p.value.nbytes());
    if (!p.trainable) buffers += p.value.numel();
  }
  json j = {{"model", o.model}, {"layers", layers}, {"parameters", g.num_trainable_parameters()}, {"buffers", buffers},
            {"flops_per_sample", flops}, {"param_bytes", param_bytes}};
  if (file_bytes >= 0) j["file_bytes"] = file_bytes;
  const bool gated = std::any_of(g.nodes().begin(), g.nodes().end(), [](const Node& n) {
    return n.op == "neuron_gate" || n.op == "l0_gate" || n.op == "block_gated_linear";
  });
  const double active_flops = gated ? active_flops_per_sample(g) : flops;
  if (gated) j["active_flops_per_sample"] = active_flops;
  if (!info.is_null()) j["info"] = info;
  if (o.json) return print_json(j);

  std::printf("%-4s %-18s %-16s %s\n", "id", "op", "output", "parameters");
  for (const json& l : layers)
    std::printf("%-4d %-18s %-16s %s\n", l["id"].get<int>(), l["op"].get<std::string>().c_str(),
                shape_str(l["output"].get<Shape>()).c_str(), l["params"].dump().c_str());
  std::printf("\nparameters: %lld trainable (+%lld buffers)\n", static_cast<long long>(g.num_trainable_parameters()),
              static_cast<long long>(buffers));
  std::printf("FLOPs per sample (forward): %.3f M\n", flops / 1e6);
  if (gated)
    std::printf("active FLOPs per sample (off neurons and unselected blocks not run): %.3f M (%.0f%%)\n", active_flops / 1e6,
                100.0 * active_flops / std::max(flops, 1.0));
  std::printf("size: %.1f KiB of parameters", param_bytes / 1024.0);
  if (file_bytes >= 0) std::printf(", %.1f KiB file", file_bytes / 1024.0);
  std::printf("\n");
  if (info.contains("training") && info["training"].contains("test")) {
    const json& test = info["training"]["test"];
    if (info.value("task", std::string()) == "regression")
      std::printf("test mse when saved: %.4f (mae %.4f)\n", test.value("loss", 0.0), test.value("mae", 0.0));
    else
      std::printf("test accuracy when saved: %.4f\n", test.value("accuracy", 0.0));
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Layers, parameters, FLOPs per sample and size of a model");
  cmd->add_option("model", opt->model, "model file, preset name or JSON spec")->required();
  cmd->add_option("--input-shape", opt->input_shape, "for presets/specs: sample shape, e.g. 1,28,28 or 13")->capture_default_str();
  cmd->add_option("--classes", opt->classes, "for presets/specs: number of outputs")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON object on stdout");
  cmd->callback([opt] { run_info(*opt); });
}

}  // namespace leanai::cli
