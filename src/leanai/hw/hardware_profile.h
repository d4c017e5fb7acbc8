// The hardware profile: what this machine is (ISA features, cores, caches,
// memory) and what it measurably delivers (GEMM peaks, memory bandwidth).
// `leanai hw --out DIR` writes it as DIR/hardware.json, read back by the tools
// that adapt to the machine (kernel choice, quantizer, thread recommender,
// benchmarks reporting "fraction of measured fp32 peak"), and as a readable
// DIR/hardware.md report.
//
//   HardwareProfile p = probe_hardware(/*measure=*/true, /*full=*/false);
//   save_hardware_profile(p, "out/hardware.json");       // reports: hardware_report.h
//   HardwareProfile q = load_hardware_profile("out/hardware.json");
//   double frac = my_gflops / q.fp32_peak_gflops();
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leanai/hw/cpu_features.h"
#include "leanai/hw/microbench.h"
#include "leanai/hw/topology.h"

namespace leanai {

using json = nlohmann::json;

struct HardwareProfile {
  static constexpr const char* kFormat = "leanai-hardware-profile";
  static constexpr int kVersion = 1;  // bump when a reader could misread an old file

  std::string leanai_version;
  std::string timestamp;  // UTC, ISO 8601: "2024-05-01T12:00:00Z"
  std::string hostname;
  std::string os;         // "Linux 6.1.0-18-amd64 x86_64"

  CpuFeatures features;
  // The cross-check against /proc/cpuinfo's flags line.
  bool cpuinfo_checked = false;
  std::vector<std::string> cpuinfo_mismatches;  // as compare_with_cpuinfo words them

  CpuTopology topology;
  std::optional<MeasuredPeaks> measured;  // absent when probed without measuring

  // All-threads medians, 0 when not measured (or unavailable).
  double fp32_peak_gflops() const;
  double bf16_peak_gflops() const;
  double int8_peak_gops() const;
  double memory_bandwidth_gbs() const;

  json to_json() const;
  // Validates everything: a missing or mistyped field, another format or
  // version throws Error naming the field.
  static HardwareProfile from_json(const json& j);
};

// Probes this machine; `measure` runs the microbenchmarks (quick, or `full`
// with more repetitions), reporting each step to `progress` when given.
HardwareProfile probe_hardware(bool measure, bool full, const MeasureProgress& progress = {});

// Reads a profile written by write_hardware_reports / save_hardware_profile;
// throws one-line Error for a missing, non-JSON, malformed or other-version file.
HardwareProfile load_hardware_profile(const std::string& path);
void save_hardware_profile(const HardwareProfile& p, const std::string& path);  // JSON, atomic

}  // namespace leanai
