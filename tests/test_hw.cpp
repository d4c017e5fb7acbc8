// Tests for the hardware probe: features against /proc/cpuinfo, topology
// against sysconf, /proc/cpuinfo and sysfs (and fake sysfs trees for the
// fallbacks), a quick measurement's sanity (never its speed), the profile's
// JSON round trip and validation, the report's wording and the `leanai hw` CLI.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "leanai/core/error.h"
#include "leanai/core/threads.h"
#include "leanai/hw/cpu_features.h"
#include "leanai/hw/hardware_profile.h"
#include "leanai/hw/hardware_report.h"
#include "leanai/hw/microbench.h"
#include "leanai/hw/topology.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using leanai::json;
using leanai::test_support::TempDir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// /proc/cpuinfo as one key -> value map per processor, parsed here independently.
std::vector<std::map<std::string, std::string>> cpuinfo_blocks() {
  std::vector<std::map<std::string, std::string>> blocks(1);
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      if (!blocks.back().empty()) blocks.emplace_back();
      continue;
    }
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    std::string value = colon + 1 < line.size() ? line.substr(colon + 2) : "";
    blocks.back()[key] = value;
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

std::set<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

std::string collapse_spaces(const std::string& s) {
  std::string out;
  for (const std::string& w : [&] {
         std::vector<std::string> v;
         std::istringstream in(s);
         for (std::string x; in >> x;) v.push_back(x);
         return v;
       }())
    out += (out.empty() ? "" : " ") + w;
  return out;
}

// The features every issue names; the probe must cover each of them.
const std::vector<std::string> kRequiredFeatures = {
    "sse4_1", "sse4_2", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"};

bool feature(const leanai::CpuFeatures& f, const std::string& name) {
  for (const auto& field : leanai::cpu_feature_fields())
    if (field.name == name) return f.*field.flag;
  ADD_FAILURE() << "no feature field named " << name;
  return false;
}

}  // namespace

// ---------------------------------------------------------------- features

TEST(CpuFeatures, EveryFlagAgreesWithProcCpuinfo) {
  const auto blocks = cpuinfo_blocks();
  ASSERT_FALSE(blocks.empty());
  ASSERT_TRUE(blocks[0].count("flags")) << "no flags line in /proc/cpuinfo (not x86?)";
  const std::set<std::string> flags = words(blocks[0].at("flags"));
  const leanai::CpuFeatures f = leanai::detect_cpu_features();
  for (const std::string& name : kRequiredFeatures)
    EXPECT_EQ(feature(f, name), flags.count(name) > 0) << name << ": CPUID/XGETBV and /proc/cpuinfo disagree";
  EXPECT_EQ(f.avx, flags.count("avx") > 0);
  // The library's own cross-check sees the same.
  EXPECT_TRUE(leanai::compare_with_cpuinfo(f, leanai::read_cpuinfo_flags()).empty());
}

TEST(CpuFeatures, VendorModelAndFamilyMatchProcCpuinfo) {
  const auto blocks = cpuinfo_blocks();
  ASSERT_FALSE(blocks.empty());
  const leanai::CpuFeatures f = leanai::detect_cpu_features();
  for (const char* key : {"vendor_id", "model name", "cpu family", "model"})
    ASSERT_TRUE(blocks[0].count(key)) << "/proc/cpuinfo has no '" << key << "'";
  EXPECT_EQ(f.vendor, blocks[0].at("vendor_id"));
  EXPECT_EQ(collapse_spaces(f.model_name), collapse_spaces(blocks[0].at("model name")));
  EXPECT_EQ(f.family, std::stoi(blocks[0].at("cpu family")));
  EXPECT_EQ(f.model, std::stoi(blocks[0].at("model")));
}

TEST(CpuFeatures, OsStateImpliesFeatures) {
  const leanai::CpuFeatures f = leanai::detect_cpu_features();
  // A feature is usable only when the OS saves its registers.
  EXPECT_TRUE(f.os_avx_state || !(f.avx || f.avx2 || f.fma || f.f16c || f.avx_vnni));
  EXPECT_TRUE(f.os_avx512_state || !(f.avx512f || f.avx512bw || f.avx512vl || f.avx512_vnni || f.avx512_bf16));
  EXPECT_TRUE(f.os_amx_state || !(f.amx_tile || f.amx_int8 || f.amx_bf16));
  EXPECT_TRUE(f.os_avx_state || !f.os_avx512_state);
}

TEST(CpuFeatures, ParsesTheFirstFlagsLineOnly) {
  const std::string text =
      "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse4_1 avx2 fma avx512_vnni amx_tile\n"
      "vmx flags\t: vnmi ept\nbugs\t\t: spectre_v1\n\n"
      "processor\t: 1\nflags\t\t: fpu sse4_2\n";
  const std::set<std::string> flags = leanai::parse_cpuinfo_flags(text);
  EXPECT_EQ(flags, (std::set<std::string>{"fpu", "sse4_1", "avx2", "fma", "avx512_vnni", "amx_tile"}));
  const leanai::CpuFeatures f = leanai::features_from_cpuinfo_flags(flags);
  EXPECT_TRUE(f.sse4_1 && f.avx2 && f.fma && f.avx512_vnni && f.amx_tile);
  EXPECT_FALSE(f.sse4_2 || f.avx512f || f.amx_int8 || f.avx_vnni);
  EXPECT_TRUE(leanai::parse_cpuinfo_flags("processor : 0\nbugs : none\n").empty());
}

TEST(CpuFeatures, CrossCheckNamesEachDisagreement) {
  leanai::CpuFeatures f = leanai::features_from_cpuinfo_flags({"sse4_1", "avx2"});
  EXPECT_TRUE(leanai::compare_with_cpuinfo(f, {"sse4_1", "avx2"}).empty());
  f.avx512_bf16 = true;
  f.avx2 = false;
  const auto diff = leanai::compare_with_cpuinfo(f, {"sse4_1", "avx2"});
  ASSERT_EQ(diff.size(), 2u);
  EXPECT_EQ(diff[0], "avx2 (cpuid: no, cpuinfo: yes)");
  EXPECT_EQ(diff[1], "avx512_bf16 (cpuid: yes, cpuinfo: no)");
}

TEST(CpuFeatures, MissingCpuinfoIsAClearError) {
  TempDir dir;
  try {
    leanai::read_cpuinfo_flags(dir.file("nope"));
    FAIL() << "expected an error";
  } catch (const leanai::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos) << e.what();
  }
  write_text(dir.file("cpuinfo"), "processor : 0\n");
  EXPECT_THROW(leanai::read_cpuinfo_flags(dir.file("cpuinfo")), leanai::Error);
}

// ---------------------------------------------------------------- topology

TEST(Topology, LogicalCpusMatchSysconf) {
  const leanai::CpuTopology t = leanai::probe_topology();
  EXPECT_EQ(t.logical_cpus, sysconf(_SC_NPROCESSORS_ONLN));
  EXPECT_GE(t.affinity_cpus, 1);
  EXPECT_LE(t.affinity_cpus, sysconf(_SC_NPROCESSORS_CONF));
  EXPECT_EQ(t.affinity_cpus, omp_get_num_procs());  // what set_num_threads(0) will use
}

TEST(Topology, CoresAndSocketsMatchProcCpuinfo) {
  const auto blocks = cpuinfo_blocks();
  std::set<std::pair<std::string, std::string>> cores;
  std::set<std::string> sockets;
  for (const auto& b : blocks) {
    if (!b.count("physical id") || !b.count("core id")) GTEST_SKIP() << "/proc/cpuinfo has no core ids here";
    cores.insert({b.at("physical id"), b.at("core id")});
    sockets.insert(b.at("physical id"));
  }
  const leanai::CpuTopology t = leanai::probe_topology();
  EXPECT_EQ(t.logical_cpus, static_cast<int>(blocks.size()));
  EXPECT_EQ(t.physical_cores, static_cast<int>(cores.size()));
  EXPECT_EQ(t.sockets, static_cast<int>(sockets.size()));
  if (blocks[0].count("siblings") && blocks[0].count("cpu cores")) {
    EXPECT_EQ(t.threads_per_core, std::stoi(blocks[0].at("siblings")) / std::stoi(blocks[0].at("cpu cores")));
  }
}

TEST(Topology, CachesMatchSysfs) {
  const leanai::CpuTopology t = leanai::probe_topology();
  const fs::path root = "/sys/devices/system/cpu/cpu0/cache";
  if (!fs::is_directory(root)) GTEST_SKIP() << "no sysfs caches here";
  EXPECT_EQ(t.caches_source, "sysfs");
  int expected = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().filename().string().rfind("index", 0) != 0) continue;
    auto line = [&](const char* name) {
      std::string s = read_text((e.path() / name).string());
      return s.substr(0, s.find('\n'));
    };
    if (line("type") == "Instruction") continue;
    ++expected;
    const int level = std::stoi(line("level"));
    const std::string size = line("size");  // "32K"
    ASSERT_EQ(size.back(), 'K') << size;
    const int64_t bytes = std::stoll(size) * 1024;
    // shared_cpu_map is a hex mask: count its bits, independently of the list parser.
    int sharing = 0;
    for (char c : line("shared_cpu_map"))
      if (std::isxdigit(static_cast<unsigned char>(c))) sharing += __builtin_popcount(std::stoi(std::string(1, c), nullptr, 16));
    bool found = false;
    for (const leanai::CacheLevel& c : t.caches)
      if (c.level == level && c.type == line("type")) {
        found = true;
        EXPECT_EQ(c.size_bytes, bytes) << "L" << level;
        EXPECT_EQ(c.shared_by, sharing) << "L" << level;
        EXPECT_GE(c.instances, 1);
        EXPECT_LE(c.instances, t.logical_cpus);
      }
    EXPECT_TRUE(found) << "L" << level << " " << line("type") << " missing from the probe";
  }
  EXPECT_EQ(static_cast<int>(t.caches.size()), expected);
  for (const leanai::CacheLevel& c : t.caches) EXPECT_NE(c.type, "Instruction");
}

TEST(Topology, TotalMemoryMatchesSysconf) {
  const leanai::CpuTopology t = leanai::probe_topology();
  const double expected = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  EXPECT_NEAR(static_cast<double>(t.total_memory_bytes), expected, 1 << 20);
}

// A fake sysfs: 4 logical CPUs, 2 cores with 2 threads each, one socket;
// per core a 48K L1d and a 2M L2, one 16M L3 for all.
void write_fake_sysfs(const fs::path& root, bool with_topology, bool with_caches) {
  write_text(root / "online", "0-3\n");
  const char* siblings[] = {"0,2", "1,3", "0,2", "1,3"};
  for (int cpu = 0; cpu < 4; ++cpu) {
    const fs::path d = root / ("cpu" + std::to_string(cpu));
    if (with_topology) {
      write_text(d / "topology" / "core_cpus_list", std::string(siblings[cpu]) + "\n");
      write_text(d / "topology" / "physical_package_id", "0\n");
    }
    if (!with_caches) {
      fs::create_directories(d);
      continue;
    }
    auto index = [&](int i, int level, const char* type, const char* size, const std::string& shared) {
      const fs::path x = d / "cache" / ("index" + std::to_string(i));
      write_text(x / "level", std::to_string(level) + "\n");
      write_text(x / "type", std::string(type) + "\n");
      write_text(x / "size", std::string(size) + "\n");
      write_text(x / "shared_cpu_list", shared + "\n");
      write_text(x / "coherency_line_size", "64\n");
    };
    index(0, 1, "Data", "48K", siblings[cpu]);
    index(1, 1, "Instruction", "32K", siblings[cpu]);
    index(2, 2, "Unified", "2048K", siblings[cpu]);
    index(3, 3, "Unified", "16M", "0-3");
  }
}

TEST(Topology, ReadsAFakeSysfsTree) {
  TempDir dir;
  write_fake_sysfs(dir.path() / "cpu", true, true);
  leanai::TopologySources src;
  src.sysfs_cpu = (dir.path() / "cpu").string();
  src.cpuinfo = dir.file("no-cpuinfo");
  const leanai::CpuTopology t = leanai::probe_topology(src);
  EXPECT_EQ(t.logical_cpus, 4);
  EXPECT_EQ(t.physical_cores, 2);
  EXPECT_EQ(t.sockets, 1);
  EXPECT_EQ(t.threads_per_core, 2);
  EXPECT_EQ(t.cores_source, "sysfs");
  EXPECT_EQ(t.caches_source, "sysfs");
  ASSERT_EQ(t.caches.size(), 3u);
  EXPECT_EQ(t.cache_bytes(1), 48 << 10);
  EXPECT_EQ(t.cache_bytes(2), 2 << 20);
  EXPECT_EQ(t.cache_bytes(3), 16 << 20);
  EXPECT_EQ(t.caches[0].shared_by, 2);
  EXPECT_EQ(t.caches[0].instances, 2);
  EXPECT_EQ(t.caches[2].shared_by, 4);
  EXPECT_EQ(t.caches[2].instances, 1);
  EXPECT_EQ(t.caches[0].line_bytes, 64);
  EXPECT_TRUE(t.notes.empty()) << t.notes[0];
}

TEST(Topology, FallsBackToCpuinfoAndSaysSo) {
  TempDir dir;
  write_fake_sysfs(dir.path() / "cpu", false, false);
  std::string cpuinfo;
  for (int cpu = 0; cpu < 4; ++cpu)
    cpuinfo += "processor\t: " + std::to_string(cpu) + "\nphysical id\t: " + std::to_string(cpu / 2) +
               "\ncore id\t\t: " + std::to_string(cpu % 2) + "\n\n";
  write_text(dir.path() / "cpuinfo", cpuinfo);
  leanai::TopologySources src;
  src.sysfs_cpu = (dir.path() / "cpu").string();
  src.cpuinfo = dir.file("cpuinfo");
  const leanai::CpuTopology t = leanai::probe_topology(src);
  EXPECT_EQ(t.logical_cpus, 4);
  EXPECT_EQ(t.physical_cores, 4);
  EXPECT_EQ(t.sockets, 2);
  EXPECT_EQ(t.cores_source, "/proc/cpuinfo");
  // Caches: glibc's sysconf or nothing, never invented, and the notes say which.
  EXPECT_NE(t.caches_source, "sysfs");
  std::string notes;
  for (const std::string& n : t.notes) notes += n + "\n";
  EXPECT_NE(notes.find("sysfs has no CPU topology"), std::string::npos) << notes;
  EXPECT_NE(notes.find("sysfs lists no caches"), std::string::npos) << notes;
  for (const leanai::CacheLevel& c : t.caches) {
    EXPECT_EQ(t.caches_source, "sysconf");
    EXPECT_EQ(c.shared_by, 0);  // sharing unknown, not guessed
  }
  const std::string md = leanai::hardware_report_markdown([&] {
    leanai::HardwareProfile p;
    p.topology = t;
    return p;
  }());
  EXPECT_NE(md.find("sysfs lists no caches"), std::string::npos);
}

TEST(Topology, UnknownCoresAreZeroNotGuessed) {
  TempDir dir;
  write_fake_sysfs(dir.path() / "cpu", false, true);
  write_text(dir.path() / "cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n\n");
  leanai::TopologySources src;
  src.sysfs_cpu = (dir.path() / "cpu").string();
  src.cpuinfo = dir.file("cpuinfo");
  const leanai::CpuTopology t = leanai::probe_topology(src);
  EXPECT_EQ(t.physical_cores, 0);
  EXPECT_EQ(t.threads_per_core, 0);
  EXPECT_EQ(t.cores_source, "unknown");
  ASSERT_FALSE(t.notes.empty());
  EXPECT_NE(t.notes[0].find("physical cores and sockets unknown"), std::string::npos) << t.notes[0];
}

TEST(Topology, ParsesCpuListsAndCacheSizes) {
  EXPECT_EQ(leanai::parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(leanai::parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_TRUE(leanai::parse_cpu_list("").empty());
  for (const char* bad : {"3-1", "a", "1,,2", "-2", "1-"}) EXPECT_THROW(leanai::parse_cpu_list(bad), leanai::Error) << bad;
  EXPECT_EQ(leanai::parse_cache_size("32K"), 32 << 10);
  EXPECT_EQ(leanai::parse_cache_size("32M"), 32 << 20);
  EXPECT_EQ(leanai::parse_cache_size("4096"), 4096);
  for (const char* bad : {"", "K", "12Q", "1.5M"}) EXPECT_THROW(leanai::parse_cache_size(bad), leanai::Error) << bad;
}

// ---------------------------------------------------------------- measurement and profile

// One measured probe (the quick mode, about 2 s), for the measurement test.
leanai::HardwareProfile measured_profile() {
  leanai::set_num_threads(1);
  leanai::HardwareProfile probe = leanai::probe_hardware(true, false);
  EXPECT_EQ(leanai::num_threads(), 1) << "the probe must restore the thread count it found";
  leanai::set_num_threads(0);
  return probe;
}

// A probe with small real measurements (milliseconds), for the profile and report tests.
const leanai::HardwareProfile& small_profile() {
  static const leanai::HardwareProfile p = [] {
    leanai::HardwareProfile probe = leanai::probe_hardware(false, false);
    leanai::MicrobenchConfig cfg;
    cfg.warmup = 1;
    cfg.runs = 3;
    leanai::MeasuredPeaks m;
    m.mode = "quick";
    for (auto [g, precision, unit] : {std::tuple{&m.fp32, "fp32", "GFLOP/s"}, std::tuple{&m.int8, "int8", "GOP/s"}}) {
      g->precision = precision;
      g->unit = unit;
      g->available = true;
      g->size_one_thread = g->size_all_threads = 96;
      g->one_thread = leanai::measure_gemm(precision, 96, 1, cfg, &g->kernel);
      g->all_threads = leanai::measure_gemm(precision, 96, 0, cfg);
    }
    m.bf16.precision = "bf16";
    m.bf16.unit = "GFLOP/s";
    m.bf16.reason = "not measured in this test";
    m.memory.available = true;
    m.memory.array_bytes = 4 << 20;
    m.memory.one_thread = leanai::measure_triad_bandwidth(m.memory.array_bytes, 1, cfg);
    m.memory.all_threads = leanai::measure_triad_bandwidth(m.memory.array_bytes, 0, cfg);
    m.seconds = 0.1;
    probe.measured = m;
    return probe;
  }();
  return p;
}

void expect_sane(const leanai::Throughput& t, int threads, const std::string& what) {
  EXPECT_TRUE(std::isfinite(t.median) && t.median > 0) << what << " median " << t.median;
  EXPECT_TRUE(std::isfinite(t.best) && t.best >= t.median) << what << " best " << t.best;
  EXPECT_GE(t.runs, 3) << what;
  EXPECT_EQ(t.threads, threads) << what;
}

TEST(Microbench, QuickMeasurementIsPositiveAndFinite) {
  const leanai::HardwareProfile p = measured_profile();
  ASSERT_TRUE(p.measured.has_value());
  const leanai::MeasuredPeaks& m = *p.measured;
  EXPECT_EQ(m.mode, "quick");
  EXPECT_GT(m.seconds, 0);
  EXPECT_GE(m.load_average, 0);  // /proc/loadavg is read
  const int all = omp_get_num_procs();
  for (const leanai::GemmPeak* g : {&m.fp32, &m.int8}) {
    ASSERT_TRUE(g->available) << g->precision << ": " << g->reason;
    EXPECT_FALSE(g->kernel.empty());
    EXPECT_GT(g->size_one_thread, 0);
    expect_sane(g->one_thread, 1, g->precision + " 1 thread");
    expect_sane(g->all_threads, all, g->precision + " all threads");
  }
  EXPECT_EQ(m.int8.unit, "GOP/s");
  EXPECT_EQ(m.fp32.unit, "GFLOP/s");
  const bool native_bf16 = p.features.avx512_bf16 || p.features.amx_bf16;
  EXPECT_EQ(m.bf16.available, native_bf16) << m.bf16.reason;
  if (native_bf16) {
    expect_sane(m.bf16.one_thread, 1, "bf16 1 thread");
    expect_sane(m.bf16.all_threads, all, "bf16 all threads");
  } else {
    EXPECT_NE(m.bf16.reason.find("no native bf16"), std::string::npos) << m.bf16.reason;
  }
  ASSERT_TRUE(m.memory.available) << m.memory.reason;
  expect_sane(m.memory.one_thread, 1, "triad 1 thread");
  expect_sane(m.memory.all_threads, all, "triad all threads");
  // Arrays several times the last-level cache, so the triad measures memory.
  int64_t l3 = p.topology.cache_bytes(3) > 0 ? p.topology.cache_bytes(3) : p.topology.cache_bytes(2);
  EXPECT_GE(m.memory.array_bytes, std::min<int64_t>(4 * l3, p.topology.total_memory_bytes / 48));
  EXPECT_EQ(p.fp32_peak_gflops(), m.fp32.all_threads.median);
  EXPECT_EQ(p.memory_bandwidth_gbs(), m.memory.all_threads.median);
}

TEST(Microbench, MedianAndBadInput) {
  EXPECT_EQ(leanai::median_of({3, 1, 2}), 2);
  EXPECT_EQ(leanai::median_of({4, 1, 3, 2}), 2.5);
  EXPECT_THROW(leanai::median_of({}), leanai::Error);
  leanai::MicrobenchConfig cfg;
  EXPECT_THROW(leanai::measure_gemm("fp64", 64, 1, cfg), leanai::Error);
  EXPECT_THROW(leanai::measure_gemm("fp32", 0, 1, cfg), leanai::Error);
  EXPECT_THROW(leanai::measure_triad_bandwidth(1000, 1, cfg), leanai::Error);
  // A small GEMM runs (and checks its own result) with odd sizes.
  const leanai::Throughput t = leanai::measure_gemm("int8", 67, 1, cfg);
  EXPECT_GT(t.median, 0);
}

TEST(HardwareProfile, JsonRoundTrips) {
  const leanai::HardwareProfile& p = small_profile();
  EXPECT_EQ(p.leanai_version, "0.1.0");
  EXPECT_EQ(p.timestamp.size(), 20u) << p.timestamp;
  EXPECT_TRUE(p.cpuinfo_checked);
  const json j = p.to_json();
  const leanai::HardwareProfile q = leanai::HardwareProfile::from_json(j);
  EXPECT_EQ(q.to_json(), j);
  EXPECT_EQ(q.fp32_peak_gflops(), p.fp32_peak_gflops());
  EXPECT_EQ(q.topology.caches.size(), p.topology.caches.size());

  TempDir dir;
  leanai::write_hardware_reports(p, dir.file("reports/sub"));
  const leanai::HardwareProfile r = leanai::load_hardware_profile(dir.file("reports/sub/hardware.json"));
  EXPECT_EQ(r.to_json(), j);
  EXPECT_EQ(read_text(dir.file("reports/sub/hardware.md")), leanai::hardware_report_markdown(p));

  // Without measurement: "measured" is null and round-trips too.
  const leanai::HardwareProfile unmeasured = leanai::probe_hardware(false, false);
  EXPECT_FALSE(unmeasured.measured.has_value());
  EXPECT_TRUE(unmeasured.to_json()["measured"].is_null());
  EXPECT_EQ(leanai::HardwareProfile::from_json(unmeasured.to_json()).to_json(), unmeasured.to_json());
  EXPECT_EQ(unmeasured.fp32_peak_gflops(), 0);
}

// Writes `text` as a profile file and returns load's error message ("" if it loaded).
std::string load_error(const TempDir& dir, const std::string& text) {
  const std::string path = dir.file("hardware.json");
  write_text(path, text);
  try {
    leanai::load_hardware_profile(path);
  } catch (const leanai::Error& e) {
    return e.what();
  }
  return "";
}

TEST(HardwareProfile, CorruptFilesGiveClearErrors) {
  TempDir dir;
  const json good = small_profile().to_json();
  EXPECT_EQ(load_error(dir, good.dump()), "");
  struct Case {
    std::string text, expect;
  };
  auto with = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return j.dump();
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {good.dump().substr(0, good.dump().size() / 2), "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {with([](json& j) { j["format"] = "something-else"; }), "not a leanai hardware profile"},
      {with([](json& j) { j["version"] = 2; }), "profile version 2"},
      {with([](json& j) { j["topology"].erase("logical_cpus"); }), "'topology.logical_cpus' is missing"},
      {with([](json& j) { j["topology"]["logical_cpus"] = 0; }), "'topology.logical_cpus' must be in [1,"},
      {with([](json& j) { j["cpu"]["features"]["avx2"] = "yes"; }), "'cpu.features.avx2' must be true or false"},
      {with([](json& j) { j["cpu"]["features"].erase("amx_int8"); }), "'cpu.features.amx_int8' is missing"},
      {with([](json& j) { j["topology"]["caches"][0]["size_bytes"] = -5; }), "'topology.caches[0].size_bytes'"},
      {with([](json& j) { j["measured"]["gemm"]["fp32"]["all_threads"]["median"] = -1.0; }),
       "'measured.gemm.fp32.all_threads.median' must be a finite number >= 0"},
      {with([](json& j) { j["measured"]["gemm"]["fp32"]["one_thread"]["runs"] = 0; }),
       "'measured.gemm.fp32.one_thread' has no positive median"},
      {with([](json& j) { j["measured"]["gemm"]["int8"]["precision"] = "fp32"; }), "must be \"int8\""},
      {with([](json& j) { j["measured"]["mode"] = 7; }), "'measured.mode' must be a string"},
      {with([](json& j) { j["measured"]["load_average"] = -3; }), "'measured.load_average' must be a finite number"},
  };
  for (const Case& c : cases) {
    const std::string err = load_error(dir, c.text);
    EXPECT_NE(err.find(c.expect), std::string::npos) << "got: " << err << "\nexpected to contain: " << c.expect;
    EXPECT_NE(err.find("hardware.json"), std::string::npos) << err;
    EXPECT_NE(err.find("re-run 'leanai hw --out DIR'"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << "not one line: " << err;
  }
  for (const std::string& path : {dir.file("absent.json"), dir.str()}) {
    try {
      leanai::load_hardware_profile(path);
      ADD_FAILURE() << "loaded " << path;
    } catch (const leanai::Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot open hardware profile '" + path + "'"), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------- report

leanai::HardwareProfile profile_with(const std::set<std::string>& flags) {
  leanai::HardwareProfile p;
  p.features = leanai::features_from_cpuinfo_flags(flags);
  p.features.vendor = "TestVendor";
  return p;
}

bool has_line(const std::vector<std::string>& lines, const std::string& start) {
  for (const std::string& l : lines)
    if (l.rfind(start, 0) == 0) return true;
  return false;
}

TEST(HardwareReport, SaysWhatTheFeaturesMean) {
  auto vnni = leanai::hardware_implications(
      profile_with({"sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}));
  EXPECT_TRUE(has_line(vnni, "fp32 runs on AVX-512"));
  EXPECT_TRUE(has_line(vnni, "int8 runs on AVX-512 VNNI"));
  EXPECT_TRUE(has_line(vnni, "bf16 native (AVX512_BF16)"));
  EXPECT_TRUE(has_line(vnni, "no AMX"));

  auto avx2 = leanai::hardware_implications(profile_with({"sse4_1", "avx", "avx2", "fma", "f16c"}));
  EXPECT_TRUE(has_line(avx2, "fp32 runs on AVX2 + FMA"));
  EXPECT_TRUE(has_line(avx2, "int8 without VNNI"));
  EXPECT_TRUE(has_line(avx2, "no native bf16"));

  auto amx = leanai::hardware_implications(profile_with(
      {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}));
  EXPECT_TRUE(has_line(amx, "int8 runs on AMX-INT8"));
  EXPECT_TRUE(has_line(amx, "bf16 native on AMX-BF16"));
  EXPECT_FALSE(has_line(amx, "no AMX"));

  leanai::HardwareProfile busy = small_profile();
  busy.measured->load_average = 2.0 * busy.topology.affinity_cpus;
  EXPECT_TRUE(has_line(leanai::hardware_implications(busy), "the load average was"));
  EXPECT_NE(leanai::hardware_summary_text(busy).find("busy machine"), std::string::npos);
  busy.measured->load_average = 0.0;
  EXPECT_FALSE(has_line(leanai::hardware_implications(busy), "the load average was"));

  leanai::HardwareProfile mismatch = profile_with({"avx2"});
  mismatch.cpuinfo_mismatches = {"avx2 (cpuid: yes, cpuinfo: no)"};
  EXPECT_TRUE(has_line(leanai::hardware_implications(mismatch), "warning: CPUID and /proc/cpuinfo disagree on avx2"));
}

TEST(HardwareReport, MarkdownHasEveryFeatureAndMeasurement) {
  const leanai::HardwareProfile& p = small_profile();
  const std::string md = leanai::hardware_report_markdown(p);
  for (const auto& field : leanai::cpu_feature_fields())
    EXPECT_NE(md.find(std::string("| ") + field.name + " | " + (p.features.*field.flag ? "yes" : "no") + " |"),
              std::string::npos)
        << field.name;
  EXPECT_NE(md.find("## What this means for leanai"), std::string::npos);
  EXPECT_NE(md.find("| fp32 GEMM (GFLOP/s) |"), std::string::npos);
  EXPECT_NE(md.find("| memory bandwidth, STREAM triad (GB/s) |"), std::string::npos);
  EXPECT_NE(md.find(p.features.amx_tile ? "AMX tiles are available" : "- no AMX"), std::string::npos);
  EXPECT_NE(md.find("All 15 flags agree with /proc/cpuinfo"), std::string::npos);
}

// ---------------------------------------------------------------- CLI

struct CliResult {
  int rc = -1;
  std::string out, err;
};

CliResult run_cli(const std::string& args, const TempDir& dir) {
  const std::string out = dir.file("stdout"), err = dir.file("stderr");
  const std::string cmd = std::string(LEANAI_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

TEST(HwCli, WritesBothReportsAndJsonParses) {
  TempDir dir;
  const CliResult r = run_cli("hw --out " + dir.file("report") + " --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json printed = json::parse(r.out);  // one JSON object
  EXPECT_EQ(printed["format"], "leanai-hardware-profile");
  ASSERT_TRUE(printed["measured"].is_object());
  EXPECT_GT(printed["measured"]["gemm"]["fp32"]["all_threads"]["median"].get<double>(), 0);
  const leanai::HardwareProfile saved = leanai::load_hardware_profile(dir.file("report/hardware.json"));
  EXPECT_EQ(saved.to_json(), printed);
  const std::string md = read_text(dir.file("report/hardware.md"));
  EXPECT_EQ(md.rfind("# Hardware report", 0), 0u);
  EXPECT_EQ(md, leanai::hardware_report_markdown(saved));
  for (const auto& e : fs::directory_iterator(dir.file("report")))
    EXPECT_TRUE(e.path().filename() == "hardware.json" || e.path().filename() == "hardware.md") << e.path();
}

TEST(HwCli, SummaryWithoutMeasuring) {
  TempDir dir;
  const CliResult r = run_cli("hw --no-measure", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("cpu "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("isa "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("caches "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("GFLOP/s"), std::string::npos) << "measured although --no-measure: " << r.out;
  std::set<std::string> files;  // nothing written but the captured stdout and stderr
  for (const auto& e : fs::directory_iterator(dir.path())) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"stdout", "stderr"}));
  EXPECT_EQ(json::parse(run_cli("hw --no-measure --json", dir).out)["measured"], nullptr);
}

TEST(HwCli, BadOptionsAreOneLineErrors) {
  TempDir dir;
  write_text(dir.file("a-file"), "x");
  for (const std::string& args : {std::string("hw --full --no-measure"), std::string("hw --bogus"),
                                  "hw --no-measure --out " + dir.file("a-file")}) {
    const CliResult r = run_cli(args, dir);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_EQ(r.err.rfind("leanai: error: ", 0), 0u) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
}
