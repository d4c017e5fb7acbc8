// The hardware report, for people: a terminal summary and a Markdown page
// (tables of features, topology, caches and measured peaks, then what they
// mean for leanai), written beside the JSON profile that tools read.
#pragma once
#include <string>
#include <vector>

#include "leanai/hw/hardware_profile.h"

namespace leanai {

// What the features and numbers mean for leanai, one sentence each
// ("int8 runs on AVX-512 VNNI", "bf16 native (AVX512_BF16)", "no AMX", ...).
std::vector<std::string> hardware_implications(const HardwareProfile& p);
std::string hardware_report_markdown(const HardwareProfile& p);
std::string hardware_summary_text(const HardwareProfile& p);  // a few lines

// Creates `dir` if needed and writes dir/hardware.json and dir/hardware.md atomically.
void write_hardware_reports(const HardwareProfile& p, const std::string& dir);

}  // namespace leanai
