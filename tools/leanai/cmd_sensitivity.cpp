// leanai sensitivity: per layer and precision, what quantizing that layer
// alone costs (output KL, SQNR, accuracy, Fisher proxy) and what it saves
// (bytes, latency on this CPU); sorted, most sensitive first, and as JSON.
#include <cmath>

#include <fmt/format.h>

#include "commands.h"
#include "leanai/core/error.h"
#include "leanai/io/atomic_file.h"
#include "leanai/quant/sensitivity.h"
#include "quant_common.h"

namespace leanai::cli {
namespace {

struct SensitivityCliOptions {
  std::string model;
  QuantDataOptions quant;
  std::string out;
  int64_t latency_batch = 256;
  bool json = false;
};

void print_table(const SensitivityReport& r) {
  std::printf("fp32 accuracy on these samples: %.2f%%; latency per layer in context (the rest at int8) at batch %lld,\n"
              "+- half the range of its repeated timings\n\n",
              100 * r.fp32_accuracy, static_cast<long long>(r.latency_batch));
  std::printf("%-16s %-8s %-5s %10s %9s %9s %11s %10s %10s %8s\n", "layer", "op", "prec", "KL", "SQNR dB", "acc pt",
              "Fisher", "KB", "ms", "+- ms");
  for (const LayerSensitivity& l : r.layers) {
    for (const PrecisionMeasure& m : l.at) {
      if (!m.available) {
        std::printf("%-16s %-8s %-5s %s\n", l.layer.c_str(), l.op.c_str(), precision_name(m.precision), "  (not available for this layer)");
        continue;
      }
      std::printf("%-16s %-8s %-5s %10.2e %9s %+9.2f %11.3e %10.1f %10.4f %8.4f\n", l.layer.c_str(), l.op.c_str(),
                  precision_name(m.precision), m.kl,
                  std::isfinite(m.sqnr_db) ? fmt::format("{:.1f}", m.sqnr_db).c_str() : "inf", m.accuracy_change,
                  m.fisher, m.bytes / 1024.0, m.latency_ms, m.latency_noise_ms);
    }
  }
}

void run_sensitivity(const SensitivityCliOptions& o, const CLI::App& cmd) {
  QuantSetup s = prepare_quantization(o.model, o.quant, cmd);
  SensitivityOptions so;
  so.latency_batch = o.latency_batch;
  const SensitivityReport r = analyze_sensitivity(s.model.graph, s.quant, s.samples.validation.x,
                                                  s.samples.validation.labels, so);
  json j = r.to_json();
  j["model"] = o.model;
  if (!o.out.empty()) write_text_atomic(o.out, j.dump(2) + "\n");
  if (o.json) {
    print_json(j);
    return;
  }
  std::printf("%s\n", describe_samples(s).c_str());
  print_table(r);
  if (!o.out.empty()) std::printf("\nwrote %s\n", o.out.c_str());
}

}  // namespace

void add_sensitivity_command(CLI::App& app) {
  auto opt = std::make_shared<SensitivityCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "sensitivity", "Per-layer quantization sensitivity: each layer alone at bf16, fp16, int8, int4, sorted");
  cmd->add_option("model", opt->model, "model file")->required();
  opt->quant.add_to(*cmd);
  cmd->add_option("-o,--out", opt->out, "also write the table as JSON (input to 'leanai quantize --sensitivity')");
  cmd->add_option("--latency-batch", opt->latency_batch, "batch size the per-layer latency is measured at")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  cmd->add_flag("--json", opt->json, "the table as one JSON object on stdout");
  cmd->callback([opt, cmd] { run_sensitivity(*opt, *cmd); });
}

}  // namespace leanai::cli
