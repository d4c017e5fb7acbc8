// leanai hw: probe this machine (ISA features, cores, caches, memory), measure
// its peaks, print a summary and write the hardware profile and report.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "commands.h"
#include "leanai/hw/hardware_profile.h"
#include "leanai/hw/hardware_report.h"
#include "progress.h"

namespace leanai::cli {
namespace {

struct HwOptions {
  bool no_measure = false;
  bool full = false;
  std::string out;
  bool json = false;
};

void run_hw(const HwOptions& o) {
  Progress progress(Progress::detect(o.json));
  const auto start = std::chrono::steady_clock::now();
  const HardwareProfile p = probe_hardware(!o.no_measure, o.full, [&](int done, int total, const std::string& step) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update("measuring", done, total, step, elapsed);
  });
  progress.finish();
  if (!o.out.empty()) write_hardware_reports(p, o.out);
  if (o.json) return print_json(p.to_json());
  std::printf("%s", hardware_summary_text(p).c_str());
  if (!o.out.empty()) {
    const std::filesystem::path d(o.out);
    std::printf("wrote %s and %s\n", (d / "hardware.json").string().c_str(), (d / "hardware.md").string().c_str());
  }
}

}  // namespace

void add_hw_command(CLI::App& app) {
  auto opt = std::make_shared<HwOptions>();
  CLI::App* cmd = app.add_subcommand("hw", "Probe this machine's CPU features, cores, caches and measured peaks");
  CLI::Option* no_measure = cmd->add_flag("--no-measure", opt->no_measure, "only detect; skip the microbenchmarks");
  cmd->add_flag("--full", opt->full, "measure with more repetitions, for steadier medians")->excludes(no_measure);
  cmd->add_option("--out", opt->out, "write DIR/hardware.json (the profile tools read) and DIR/hardware.md");
  cmd->add_flag("--json", opt->json, "print the profile as one JSON object");
  cmd->callback([opt] { run_hw(*opt); });
}

}  // namespace leanai::cli
