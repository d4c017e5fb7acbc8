// leanai quantize: a mixed-precision model within a budget (max accuracy
// drop, size or latency), or one precision everywhere (--uniform). Prints
// FP32, uniform INT8 and the written plan side by side: size, speed, accuracy.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/io/model_file.h"
#include "leanai/quant/plan_eval.h"
#include "leanai/quant/sensitivity.h"
#include "quant_common.h"

namespace leanai::cli {
namespace {

struct QuantizeCliOptions {
  std::string model;
  QuantDataOptions quant;
  std::string target = "max-drop=0.3%";
  std::string uniform;
  std::string sensitivity;  // a table from 'leanai sensitivity --out'
  std::string out;
  int max_evals = 6;
  int64_t latency_batch = 256;
  bool json = false;
};

struct Row {
  std::string name;
  int64_t bytes = 0;
  double latency_ms = 0, test_accuracy = 0, val_accuracy = 0;
};

Row measure(const std::string& name, const Graph& g, const QuantSetup& s, const SampleSet& test) {
  Row r{name, parameter_bytes(g)};
  r.test_accuracy = accuracy(plan_logits(g, test.x), test.labels);
  r.val_accuracy = accuracy(plan_logits(g, s.samples.validation.x), s.samples.validation.labels);
  return r;
}

std::string default_out(const std::string& model) {
  std::filesystem::path p(model);
  return (p.parent_path() / (p.stem().string() + ".quant.leanai")).string();
}

void run_quantize(QuantizeCliOptions o, const CLI::App& cmd) {
  // Check what the user typed before the minutes of calibration and measuring.
  if (o.uniform.empty()) parse_budget(o.target, 1.0, 1.0);
  SensitivityReport table;
  if (o.uniform.empty() && !o.sensitivity.empty()) table = SensitivityReport::read(o.sensitivity);
  QuantSetup s = prepare_quantization(o.model, o.quant, cmd);
  if (o.out.empty()) o.out = default_out(o.model);
  std::vector<int64_t> all(static_cast<size_t>(s.data.test->size()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const SampleSet test = gather_rows(*s.data.test, all);

  // Layers in graph order, and what uniform precisions give.
  std::vector<std::string> layers;
  for (const Node& n : s.inference.nodes())
    if (const std::string l = layer_name(s.inference, n); !l.empty()) layers.push_back(l);
  const auto uniform = [&](Precision p) { return apply_precisions(s.inference, s.quant, layers, Assignment(layers.size(), p)); };
  Row fp32 = measure("fp32", s.inference, s, test);
  fp32.latency_ms = plan_latency_ms(s.inference, o.latency_batch, 0.5);  // the budget's reference; timed again below
  const Graph int8_graph = uniform(Precision::int8);
  Row int8 = measure("uniform int8", int8_graph, s, test);

  Graph chosen;
  json plan_j = json::object(), solver_j = json::object();
  std::string chosen_name;
  if (!o.uniform.empty()) {
    const Precision p = precision_from_name(o.uniform);
    chosen = uniform(p);
    chosen_name = "uniform " + o.uniform;
    for (const auto& l : layers) plan_j[l] = o.uniform;
  } else {
    if (o.sensitivity.empty()) {
      SensitivityOptions so;
      so.latency_batch = o.latency_batch;
      table = analyze_sensitivity(s.model.graph, s.quant, s.samples.validation.x, s.samples.validation.labels, so);
    }
    const std::vector<LayerCosts> costs = table.costs();
    std::vector<std::string> order;
    for (const LayerCosts& c : costs) order.push_back(c.layer);
    const SolverBudget budget = parse_budget(o.target, static_cast<double>(fp32.bytes), fp32.latency_ms);
    const SampleSet& val = s.samples.validation;
    auto evaluate = [&](const Assignment& a) {
      const Graph g = apply_precisions(s.inference, s.quant, order, a);
      PlanMeasure m;
      m.drop = 100.0 * (fp32.val_accuracy - accuracy(plan_logits(g, val.x), val.labels));
      m.bytes = static_cast<double>(parameter_bytes(g));
      m.latency_ms = plan_latency_ms(g, o.latency_batch, 0.5);
      return m;
    };
    SolverOptions so;
    so.max_evaluations = o.max_evals;
    so.candidates = {Assignment(order.size(), Precision::int8)};  // uniform int8 often measures best
    so.time_side_by_side = [&](const std::vector<Assignment>& plans) {
      std::vector<Graph> graphs;
      for (const Assignment& a : plans) graphs.push_back(apply_precisions(s.inference, s.quant, order, a));
      std::vector<const Graph*> pointers;
      for (const Graph& g : graphs) pointers.push_back(&g);
      return side_by_side_latency_ms(pointers, o.latency_batch, 5);
    };
    const SolvedPlan plan = solve_precisions(costs, budget, evaluate, so);
    chosen = apply_precisions(s.inference, s.quant, order, plan.assignment);
    chosen_name = "mixed (" + o.target + ")";
    for (size_t i = 0; i < order.size(); ++i) plan_j[order[i]] = precision_name(plan.assignment[i]);
    solver_j = {{"target", o.target}, {"met_budget", plan.met_budget}, {"evaluations", plan.evaluations},
                {"log", plan.log}, {"validation_drop_points", plan.measured.drop}};
    if (!plan.met_budget)
      std::fprintf(stderr, "leanai: warning: no plan met %s on the validation samples within %d evaluations; "
                           "writing the closest (raise --max-evals or relax the target)\n",
                   o.target.c_str(), o.max_evals);
  }
  Row mixed = measure(chosen_name, chosen, s, test);
  const std::vector<double> medians = side_by_side_latency_ms({&s.inference, &int8_graph, &chosen}, o.latency_batch, 3, 0.5);
  fp32.latency_ms = medians[0];
  int8.latency_ms = medians[1];
  mixed.latency_ms = medians[2];

  json calib = json::object();
  for (const auto& [layer, q] : s.quant)
    calib[layer] = q.dynamic ? json{{"dynamic", true}}
                             : json{{"scale", q.input.scale}, {"zero_point", q.input.zero_point},
                                    {"dtype", dtype_name(q.input.dtype)}};
  json rows = json::array();
  for (const Row* r : {&fp32, &int8, &mixed})
    rows.push_back({{"name", r->name}, {"bytes", r->bytes}, {"size_share", double(r->bytes) / double(fp32.bytes)},
                    {"latency_ms", r->latency_ms}, {"speedup", fp32.latency_ms / r->latency_ms},
                    {"test_accuracy", r->test_accuracy}, {"change_points", 100 * (r->test_accuracy - fp32.test_accuracy)}});
  json info = s.model.info;
  info["quantization"] = {{"plan", plan_j}, {"calibration", calib}, {"calibrator", o.quant.calibrator},
                          {"solver", solver_j}, {"table", rows}, {"latency_batch", o.latency_batch},
                          {"threads", num_threads()}, {"samples", describe_samples(s)}};
  save_model(o.out, chosen, info);

  if (o.json) {
    print_json({{"out", o.out}, {"plan", plan_j}, {"solver", solver_j}, {"table", rows}});
    return;
  }
  std::printf("%s\n", describe_samples(s).c_str());
  std::printf("\n%-28s %10s %7s %12s %8s %9s %8s\n", "", "size KB", "% fp32", fmt::format("b{} ms", o.latency_batch).c_str(),
              "speed", "test acc", "change");
  for (const Row* r : {&fp32, &int8, &mixed})
    std::printf("%-28s %10.1f %6.1f%% %12.3f %7.2fx %8.2f%% %+7.2f\n", r->name.c_str(), r->bytes / 1024.0,
                100.0 * r->bytes / fp32.bytes, r->latency_ms, fp32.latency_ms / r->latency_ms, 100 * r->test_accuracy,
                100 * (r->test_accuracy - fp32.test_accuracy));
  std::printf("\nplan:");
  for (const auto& [layer, p] : plan_j.items()) std::printf(" %s=%s", layer.c_str(), p.get<std::string>().c_str());
  std::printf("\nwrote %s (%d threads)\n", o.out.c_str(), num_threads());
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto opt = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Mixed-precision quantization within an accuracy, size or latency budget");
  cmd->add_option("model", opt->model, "model file")->required();
  opt->quant.add_to(*cmd);
  cmd->add_option("--target", opt->target, "max-drop=0.3% (accuracy points), size=30% or size=2MB, latency=40% or latency=1.5ms")
      ->capture_default_str();
  cmd->add_option("--uniform", opt->uniform, "one precision for every layer instead of a plan")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16", "int8", "int4"}));
  cmd->add_option("--sensitivity", opt->sensitivity, "a table from 'leanai sensitivity --out' (else measured now)");
  cmd->add_option("-o,--out", opt->out, "quantized model file (default: MODEL.quant.leanai)");
  cmd->add_option("--max-evals", opt->max_evals, "full evaluations of candidate plans on the validation samples")
      ->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--latency-batch", opt->latency_batch, "batch size latency is measured at")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  cmd->add_flag("--json", opt->json, "one JSON object on stdout");
  cmd->callback([opt, cmd] { run_quantize(*opt, *cmd); });
}

}  // namespace leanai::cli
