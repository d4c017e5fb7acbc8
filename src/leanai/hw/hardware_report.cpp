#include "leanai/hw/hardware_report.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "leanai/core/error.h"
#include "leanai/io/atomic_file.h"

namespace leanai {
namespace {

std::string bytes_str(int64_t b) {
  if (b <= 0) return "unknown";
  if (b >= (int64_t{1} << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (1 << 20) && b % (1 << 20) == 0) return fmt::format("{} MiB", b >> 20);
  if (b >= (1 << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  if (b >= (1 << 10)) return fmt::format("{} KiB", b >> 10);
  return fmt::format("{} B", b);
}

std::string cache_name(const CacheLevel& c) {
  return fmt::format("L{}{}", c.level, c.type == "Data" ? "d" : c.type == "Instruction" ? "i" : "");
}

// The measured all-threads ratio a/b when both were measured, else 0.
double ratio(double a, double b) { return a > 0 && b > 0 ? a / b : 0.0; }

std::string yes_no(bool b) { return b ? "yes" : "no"; }

}  // namespace

std::vector<std::string> hardware_implications(const HardwareProfile& p) {
  const CpuFeatures& f = p.features;
  const CpuTopology& t = p.topology;
  std::vector<std::string> out;

  if (f.avx512f && f.avx512bw && f.avx512vl)
    out.push_back("fp32 runs on AVX-512 kernels (oneDNN avx512_core)");
  else if (f.avx2 && f.fma)
    out.push_back("fp32 runs on AVX2 + FMA kernels (no AVX-512)");
  else if (f.avx)
    out.push_back("fp32 runs on AVX kernels without FMA: expect a fraction of a modern CPU's speed");
  else if (f.sse4_1)
    out.push_back("fp32 runs on SSE4.1 kernels (no AVX): expect a fraction of a modern CPU's speed");
  else
    out.push_back("no SSE4.1: oneDNN falls back to reference kernels, and leanai will be slow here");

  const double int8_x = ratio(p.int8_peak_gops(), p.fp32_peak_gflops());
  const std::string int8_measured = int8_x > 0 ? fmt::format(" (measured {:.1f}x the fp32 rate)", int8_x) : "";
  if (f.amx_int8)
    out.push_back("int8 runs on AMX-INT8 tiles, the fastest int8 path" + int8_measured);
  else if (f.avx512_vnni)
    out.push_back("int8 runs on AVX-512 VNNI" + int8_measured);
  else if (f.avx_vnni)
    out.push_back("int8 runs on AVX-VNNI (256-bit)" + int8_measured);
  else if (f.avx512bw || f.avx2)
    out.push_back(std::string("int8 without VNNI: oneDNN uses ") + (f.avx512bw ? "AVX-512BW" : "AVX2") +
                  " multiply-add sequences, so int8 mainly saves memory here" + int8_measured);
  else
    out.push_back("int8 has no fast kernel on this CPU: quantizing saves memory, not time");

  const double bf16_x = ratio(p.bf16_peak_gflops(), p.fp32_peak_gflops());
  const std::string bf16_measured = bf16_x > 0 ? fmt::format(" (measured {:.1f}x the fp32 rate)", bf16_x) : "";
  if (f.amx_bf16)
    out.push_back("bf16 native on AMX-BF16 tiles" + bf16_measured);
  else if (f.avx512_bf16)
    out.push_back("bf16 native (AVX512_BF16)" + bf16_measured);
  else
    out.push_back("no native bf16: keep fp32, or use int8 (oneDNN only emulates bf16 here)");

  if (f.amx_tile)
    out.push_back("AMX tiles are available and enabled by the OS");
  else
    out.push_back("no AMX");
  out.push_back(f.f16c ? "fp16 weights convert to fp32 in hardware (F16C)"
                       : "no F16C: fp16 weights convert in software (slower fp16 decompression)");

  if (t.threads_per_core > 1 && t.physical_cores > 0)
    out.push_back(fmt::format("SMT: {} threads per core; compute-bound kernels usually do best with one thread "
                              "per physical core ({} threads)",
                              t.threads_per_core, t.physical_cores));
  if (t.affinity_cpus > 0 && t.affinity_cpus < t.logical_cpus)
    out.push_back(fmt::format("this process may run on {} of the {} online CPUs (affinity or cgroup limit); "
                              "leanai uses {} threads",
                              t.affinity_cpus, t.logical_cpus, t.affinity_cpus));

  const double balance = ratio(p.fp32_peak_gflops(), p.memory_bandwidth_gbs());
  if (balance > 0)
    out.push_back(fmt::format("machine balance {:.1f} FLOP per byte of memory traffic (fp32 peak / bandwidth): "
                              "work doing fewer FLOPs per byte, like batch-1 fp32 linear layers (0.5 FLOP/byte), "
                              "is memory-bound, so smaller weights (int8, int4) speed it up",
                              balance));
  int llc_level = 0;
  for (const CacheLevel& c : t.caches) llc_level = std::max(llc_level, c.level);
  for (const CacheLevel& c : t.caches) {
    if (c.level != llc_level || c.size_bytes <= 0) continue;
    const int n = std::max(c.instances, 1);
    out.push_back(fmt::format("weights up to about {} ({}the L{} cache{}) can stay cache-resident between requests",
                              bytes_str(c.size_bytes * n), n > 1 ? fmt::format("{} x ", n) : "", llc_level,
                              n > 1 ? "s" : ""));
    break;
  }
  if (p.measured && p.measured->load_average >= 0.5 * std::max(t.affinity_cpus, 1))
    out.push_back(fmt::format("the load average was {:.1f} on {} CPUs before measuring: other work competed for the "
                              "cores, so the measured peaks (above all the all-threads ones) are likely low",
                              p.measured->load_average, std::max(t.affinity_cpus, 1)));
  if (!p.cpuinfo_mismatches.empty()) {
    std::string list;
    for (const std::string& m : p.cpuinfo_mismatches) list += (list.empty() ? "" : ", ") + m;
    out.push_back("warning: CPUID and /proc/cpuinfo disagree on " + list +
                  " (the kernel may have disabled a feature); leanai follows CPUID");
  }
  return out;
}

std::string hardware_report_markdown(const HardwareProfile& p) {
  const CpuFeatures& f = p.features;
  const CpuTopology& t = p.topology;
  std::string md = "# Hardware report\n\n";
  md += fmt::format("Probed {} on `{}` ({}) by leanai {}. ", p.timestamp, p.hostname, p.os, p.leanai_version);
  md += p.measured ? fmt::format("Measured in {} mode in {:.1f} s.\n\n", p.measured->mode, p.measured->seconds)
                   : "Not measured (`--no-measure`).\n\n";

  md += "## What this means for leanai\n\n";
  for (const std::string& line : hardware_implications(p)) md += "- " + line + "\n";

  md += "\n## Processor\n\n| | |\n|---|---|\n";
  md += fmt::format("| model | {} |\n", f.model_name.empty() ? "unknown" : f.model_name);
  md += fmt::format("| vendor | {} (family {}, model {}, stepping {}) |\n", f.vendor, f.family, f.model, f.stepping);
  md += fmt::format("| logical CPUs | {} online, {} usable by this process |\n", t.logical_cpus, t.affinity_cpus);
  md += fmt::format("| physical cores | {} (from {}) |\n", t.physical_cores > 0 ? std::to_string(t.physical_cores) : "unknown",
                    t.cores_source);
  md += fmt::format("| sockets | {} |\n", t.sockets > 0 ? std::to_string(t.sockets) : "unknown");
  md += fmt::format("| threads per core | {} |\n", t.threads_per_core > 0 ? std::to_string(t.threads_per_core) : "unknown");
  md += fmt::format("| memory | {} |\n", bytes_str(t.total_memory_bytes));

  md += "\n## ISA features\n\n| feature | usable | what it is |\n|---|---|---|\n";
  for (const CpuFeatureField& field : cpu_feature_fields())
    md += fmt::format("| {} | {} | {} |\n", field.name, yes_no(f.*field.flag), field.meaning);
  md += fmt::format("\nThe OS saves AVX state: {}; AVX-512 state: {}; AMX tile state: {}. ", yes_no(f.os_avx_state),
                    yes_no(f.os_avx512_state), yes_no(f.os_amx_state));
  if (!p.cpuinfo_checked)
    md += "Not cross-checked against /proc/cpuinfo (not readable).\n";
  else if (p.cpuinfo_mismatches.empty())
    md += fmt::format("All {} flags agree with /proc/cpuinfo.\n", cpu_feature_fields().size());
  else
    md += fmt::format("{} flags disagree with /proc/cpuinfo (see above).\n", p.cpuinfo_mismatches.size());

  md += "\n## Caches\n\n";
  if (t.caches.empty()) {
    md += "Unknown: the system reports no cache information.\n";
  } else {
    md += "| cache | size | shared by (logical CPUs) | instances | line |\n|---|---|---|---|---|\n";
    auto or_unknown = [](int v) { return v > 0 ? std::to_string(v) : std::string("unknown"); };
    for (const CacheLevel& c : t.caches)
      md += fmt::format("| {} | {} | {} | {} | {} |\n", cache_name(c), bytes_str(c.size_bytes), or_unknown(c.shared_by),
                        or_unknown(c.instances), c.line_bytes > 0 ? fmt::format("{} B", c.line_bytes) : "unknown");
    md += fmt::format("\nSource: {}.\n", t.caches_source);
  }

  if (p.measured) {
    const MeasuredPeaks& m = *p.measured;
    int all = m.fp32.all_threads.threads > 0 ? m.fp32.all_threads.threads : m.memory.all_threads.threads;
    md += fmt::format("\n## Measured peaks ({} mode, medians; best run in brackets)\n\n", m.mode);
    md += fmt::format("| measurement | 1 thread | {} threads | kernel | size |\n|---|---|---|---|---|\n", all);
    for (const GemmPeak* g : {&m.fp32, &m.bf16, &m.int8}) {
      const std::string name = g->precision == "int8" ? "int8 GEMM, u8·s8→s32 (GOP/s)"
                               : g->precision == "bf16" ? "bf16 GEMM, bf16·bf16→f32 (GFLOP/s)"
                                                        : "fp32 GEMM (GFLOP/s)";
      if (!g->available) {
        md += fmt::format("| {} | not measured: {} | | | |\n", name, g->reason);
        continue;
      }
      md += fmt::format("| {} | {:.1f} [{:.1f}] | {:.1f} [{:.1f}] | {} | {}³ / {}³ |\n", name, g->one_thread.median,
                        g->one_thread.best, g->all_threads.median, g->all_threads.best, g->kernel, g->size_one_thread,
                        g->size_all_threads);
    }
    if (m.memory.available)
      md += fmt::format("| memory bandwidth, STREAM triad (GB/s) | {:.1f} [{:.1f}] | {:.1f} [{:.1f}] | plain C++ | 3 × {} |\n",
                        m.memory.one_thread.median, m.memory.one_thread.best, m.memory.all_threads.median,
                        m.memory.all_threads.best, bytes_str(m.memory.array_bytes));
    else
      md += fmt::format("| memory bandwidth, STREAM triad (GB/s) | not measured: {} | | | |\n", m.memory.reason);
    md += "\nGEMM: C = A·B at M = N = K = size, weights pre-packed in oneDNN's chosen layout, "
          "2·M·N·K operations per run. Triad: a = b + s·c over double arrays each at least 4× the last-level cache, "
          "24 bytes per element (write-allocate traffic not counted, as in STREAM). "
          "Other work on the machine lowers these numbers; `leanai hw --full` repeats more.\n";
  }

  if (!t.notes.empty()) {
    md += "\n## Notes\n\n";
    for (const std::string& n : t.notes) md += "- " + n + "\n";
  }
  return md;
}

std::string hardware_summary_text(const HardwareProfile& p) {
  const CpuFeatures& f = p.features;
  const CpuTopology& t = p.topology;
  std::string s;
  s += fmt::format("cpu      {} ({}, family {} model {})\n", f.model_name.empty() ? "unknown" : f.model_name, f.vendor,
                   f.family, f.model);
  s += fmt::format("cores    {} logical CPUs, {} physical cores, {} socket{}, memory {}\n", t.logical_cpus,
                   t.physical_cores > 0 ? std::to_string(t.physical_cores) : "unknown",
                   t.sockets > 0 ? std::to_string(t.sockets) : "unknown", t.sockets == 1 ? "" : "s",
                   bytes_str(t.total_memory_bytes));
  std::string have, missing;
  for (const CpuFeatureField& field : cpu_feature_fields())
    (f.*field.flag ? have : missing) += std::string(have.empty() && f.*field.flag ? "" : " ") + field.name;
  s += "isa      " + (have.empty() ? std::string("(none of the probed features)") : have) + "\n";
  if (!missing.empty()) s += "missing " + missing + "\n";
  std::string caches;
  for (const CacheLevel& c : t.caches)
    caches += fmt::format("{}{} {}{}", caches.empty() ? "" : ", ", cache_name(c), bytes_str(c.size_bytes),
                          c.instances > 0 ? fmt::format(" x{}", c.instances) : "");
  s += "caches   " + (caches.empty() ? std::string("unknown") : caches) + "\n";
  if (p.measured) {
    const MeasuredPeaks& m = *p.measured;
    for (const GemmPeak* g : {&m.fp32, &m.bf16, &m.int8}) {
      if (!g->available) {
        s += fmt::format("{:<8} not measured: {}\n", g->precision, g->reason);
        continue;
      }
      s += fmt::format("{:<8} {:.1f} {} on 1 thread, {:.1f} on {} threads ({})\n", g->precision, g->one_thread.median,
                       g->unit, g->all_threads.median, g->all_threads.threads, g->kernel);
    }
    if (m.memory.available)
      s += fmt::format("memory   {:.1f} GB/s on 1 thread, {:.1f} on {} threads (triad)\n", m.memory.one_thread.median,
                       m.memory.all_threads.median, m.memory.all_threads.threads);
    else
      s += "memory   not measured: " + m.memory.reason + "\n";
    s += fmt::format("measured in {:.1f} s ({} mode){}\n", m.seconds, m.mode,
                     m.load_average >= 0 ? fmt::format(", load average {:.1f} before", m.load_average) : "");
  }
  std::string brief;
  for (const std::string& line : hardware_implications(p)) {
    if (line.rfind("int8 ", 0) == 0 || line.rfind("bf16 ", 0) == 0 || line.rfind("no native bf16", 0) == 0 ||
        line == "no AMX" || line.rfind("AMX ", 0) == 0 || line.rfind("warning", 0) == 0 ||
        line.rfind("the load average", 0) == 0) {
      const size_t cut = line.find(" (");
      const bool whole = line.rfind("warning", 0) == 0;
      brief += (brief.empty() ? "" : "; ") +
               (whole ? line : line.rfind("the load average", 0) == 0 ? std::string("busy machine, peaks likely low")
                                                                      : line.substr(0, cut));
    }
  }
  s += "means    " + brief + "\n";
  return s;
}

void write_hardware_reports(const HardwareProfile& p, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  check(!ec && std::filesystem::is_directory(dir),
        "cannot create report directory '" + dir + "'" + (ec ? ": " + ec.message() : ": a file of that name exists"));
  const std::filesystem::path d(dir);
  save_hardware_profile(p, (d / "hardware.json").string());
  write_text_atomic((d / "hardware.md").string(), hardware_report_markdown(p));
}

}  // namespace leanai
