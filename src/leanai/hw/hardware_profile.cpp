#include "leanai/hw/hardware_profile.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>

#include "leanai/core/error.h"
#include "leanai/core/version.h"
#include "leanai/io/atomic_file.h"

namespace leanai {
namespace {

// Reads one field of the profile, checking presence and type; errors name the
// field by its dotted path ("topology.caches[1].size_bytes").
class Field {
 public:
  Field(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  Field operator[](const std::string& key) const {
    if (!j_.is_object()) fail("must be a JSON object");
    auto it = j_.find(key);
    const std::string child = path_.empty() ? key : path_ + "." + key;
    if (it == j_.end()) throw Error("field '" + child + "' is missing");
    return Field(*it, child);
  }
  const std::string& path() const { return path_; }
  Field at(size_t i) const { return Field(j_[i], path_ + "[" + std::to_string(i) + "]"); }
  bool has(const std::string& key) const { return j_.is_object() && j_.contains(key); }
  bool is_null() const { return j_.is_null(); }
  size_t array_size() const {
    if (!j_.is_array()) fail("must be an array");
    return j_.size();
  }

  bool boolean() const {
    if (!j_.is_boolean()) fail("must be true or false");
    return j_.get<bool>();
  }
  std::string string() const {
    if (!j_.is_string()) fail("must be a string");
    return j_.get<std::string>();
  }
  int64_t integer(int64_t lo = 0, int64_t hi = std::numeric_limits<int64_t>::max()) const {
    if (!j_.is_number_integer()) fail("must be an integer");
    const bool huge = j_.is_number_unsigned() && j_.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max());
    const int64_t v = huge ? 0 : j_.get<int64_t>();
    if (huge || v < lo || v > hi) fail("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  int small_int(int lo = 0, int hi = 1 << 20) const { return static_cast<int>(integer(lo, hi)); }
  double number() const {  // finite and >= 0
    if (!j_.is_number()) fail("must be a number");
    const double v = j_.get<double>();
    if (!std::isfinite(v) || v < 0) fail("must be a finite number >= 0");
    return v;
  }
  double number_or_unknown() const {  // a number() or -1 for "unknown"
    if (j_.is_number() && j_.get<double>() == -1.0) return -1.0;
    if (!j_.is_number() || !std::isfinite(j_.get<double>()) || j_.get<double>() < 0)
      fail("must be a finite number >= 0, or -1 for unknown");
    return j_.get<double>();
  }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < array_size(); ++i) out.push_back(at(i).string());
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::string got = j_.dump();
    if (got.size() > 40) got = got.substr(0, 37) + "...";
    throw Error("field '" + path_ + "' " + what + " (got " + got + ")");
  }
  const json& j_;
  std::string path_;
};

json throughput_json(const Throughput& t) {
  return {{"median", t.median}, {"best", t.best}, {"runs", t.runs}, {"threads", t.threads}};
}

Throughput throughput_from(const Field& f) {
  Throughput t;
  t.median = f["median"].number();
  t.best = f["best"].number();
  t.runs = f["runs"].small_int();
  t.threads = f["threads"].small_int();
  return t;
}

// An available measurement must have run: positive medians, runs and threads.
void check_ran(const Field& f, const Throughput& t) {
  if (!(t.median > 0 && t.best > 0 && t.runs > 0 && t.threads > 0))
    throw Error("field '" + f.path() + "' has no positive median, runs and threads although marked available");
}

json gemm_json(const GemmPeak& g) {
  return {{"precision", g.precision}, {"unit", g.unit}, {"available", g.available}, {"reason", g.reason},
          {"kernel", g.kernel}, {"size_one_thread", g.size_one_thread}, {"size_all_threads", g.size_all_threads},
          {"one_thread", throughput_json(g.one_thread)}, {"all_threads", throughput_json(g.all_threads)}};
}

GemmPeak gemm_from(const Field& f, const std::string& precision) {
  GemmPeak g;
  g.precision = f["precision"].string();
  if (g.precision != precision)
    throw Error("field '" + f["precision"].path() + "' must be \"" + precision + "\" (got \"" + g.precision + "\")");
  g.unit = f["unit"].string();
  g.available = f["available"].boolean();
  g.reason = f["reason"].string();
  g.kernel = f["kernel"].string();
  g.size_one_thread = f["size_one_thread"].integer(0, 1 << 20);
  g.size_all_threads = f["size_all_threads"].integer(0, 1 << 20);
  g.one_thread = throughput_from(f["one_thread"]);
  g.all_threads = throughput_from(f["all_threads"]);
  if (g.available) {
    check_ran(f["one_thread"], g.one_thread);
    check_ran(f["all_threads"], g.all_threads);
  }
  return g;
}

json features_json(const CpuFeatures& c) {
  json flags = json::object();
  for (const CpuFeatureField& field : cpu_feature_fields()) flags[field.name] = c.*field.flag;
  return flags;
}

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double all_threads_median(const std::optional<MeasuredPeaks>& m, const GemmPeak MeasuredPeaks::*which) {
  return m && (*m.*which).available ? (*m.*which).all_threads.median : 0.0;
}

}  // namespace

double HardwareProfile::fp32_peak_gflops() const { return all_threads_median(measured, &MeasuredPeaks::fp32); }
double HardwareProfile::bf16_peak_gflops() const { return all_threads_median(measured, &MeasuredPeaks::bf16); }
double HardwareProfile::int8_peak_gops() const { return all_threads_median(measured, &MeasuredPeaks::int8); }
double HardwareProfile::memory_bandwidth_gbs() const {
  return measured && measured->memory.available ? measured->memory.all_threads.median : 0.0;
}

json HardwareProfile::to_json() const {
  const CpuFeatures& f = features;
  json cpu = {{"vendor", f.vendor}, {"model_name", f.model_name}, {"family", f.family}, {"model", f.model},
              {"stepping", f.stepping}, {"features", features_json(f)},
              {"os_state", {{"avx", f.os_avx_state}, {"avx512", f.os_avx512_state}, {"amx", f.os_amx_state}}},
              {"cpuinfo_cross_check", {{"checked", cpuinfo_checked}, {"mismatches", cpuinfo_mismatches}}}};
  json caches = json::array();
  for (const CacheLevel& c : topology.caches)
    caches.push_back({{"level", c.level}, {"type", c.type}, {"size_bytes", c.size_bytes}, {"shared_by", c.shared_by},
                      {"instances", c.instances}, {"line_bytes", c.line_bytes}});
  const CpuTopology& t = topology;
  json topo = {{"logical_cpus", t.logical_cpus}, {"affinity_cpus", t.affinity_cpus},
               {"physical_cores", t.physical_cores}, {"sockets", t.sockets},
               {"threads_per_core", t.threads_per_core}, {"cores_source", t.cores_source},
               {"caches", caches}, {"caches_source", t.caches_source},
               {"total_memory_bytes", t.total_memory_bytes}, {"notes", t.notes}};
  json meas = nullptr;
  if (measured) {
    const MeasuredPeaks& m = *measured;
    meas = {{"mode", m.mode},
            {"seconds", m.seconds},
            {"load_average", m.load_average},
            {"gemm", {{"fp32", gemm_json(m.fp32)}, {"bf16", gemm_json(m.bf16)}, {"int8", gemm_json(m.int8)}}},
            {"memory_bandwidth",
             {{"unit", "GB/s"}, {"method", "STREAM triad, 24 bytes per element"}, {"available", m.memory.available},
              {"reason", m.memory.reason}, {"array_bytes", m.memory.array_bytes},
              {"one_thread", throughput_json(m.memory.one_thread)},
              {"all_threads", throughput_json(m.memory.all_threads)}}}};
  }
  return {{"format", kFormat}, {"version", kVersion}, {"leanai_version", leanai_version},
          {"timestamp", timestamp}, {"hostname", hostname}, {"os", os},
          {"cpu", cpu}, {"topology", topo}, {"measured", meas}};
}

HardwareProfile HardwareProfile::from_json(const json& j) {
  const Field root(j, "");
  if (!j.is_object()) throw Error("not a JSON object");
  if (root["format"].string() != kFormat)
    throw Error("not a leanai hardware profile (format '" + root["format"].string() + "', expected '" + kFormat + "')");
  const int64_t version = root["version"].integer();
  if (version != kVersion)
    throw Error("profile version " + std::to_string(version) + " is not the version this leanai reads (" +
                std::to_string(kVersion) + ")");
  HardwareProfile p;
  p.leanai_version = root["leanai_version"].string();
  p.timestamp = root["timestamp"].string();
  p.hostname = root["hostname"].string();
  p.os = root["os"].string();

  const Field cpu = root["cpu"];
  CpuFeatures& f = p.features;
  f.vendor = cpu["vendor"].string();
  f.model_name = cpu["model_name"].string();
  f.family = cpu["family"].small_int();
  f.model = cpu["model"].small_int();
  f.stepping = cpu["stepping"].small_int();
  const Field flags = cpu["features"];
  for (const CpuFeatureField& field : cpu_feature_fields()) f.*field.flag = flags[field.name].boolean();
  const Field os_state = cpu["os_state"];
  f.os_avx_state = os_state["avx"].boolean();
  f.os_avx512_state = os_state["avx512"].boolean();
  f.os_amx_state = os_state["amx"].boolean();
  p.cpuinfo_checked = cpu["cpuinfo_cross_check"]["checked"].boolean();
  p.cpuinfo_mismatches = cpu["cpuinfo_cross_check"]["mismatches"].strings();

  const Field topo = root["topology"];
  CpuTopology& t = p.topology;
  t.logical_cpus = topo["logical_cpus"].small_int(1);
  t.affinity_cpus = topo["affinity_cpus"].small_int(1);
  t.physical_cores = topo["physical_cores"].small_int();
  t.sockets = topo["sockets"].small_int();
  t.threads_per_core = topo["threads_per_core"].small_int();
  t.cores_source = topo["cores_source"].string();
  const Field caches = topo["caches"];
  for (size_t i = 0; i < caches.array_size(); ++i) {
    const Field c = caches.at(i);
    CacheLevel level;
    level.level = c["level"].small_int(1, 8);
    level.type = c["type"].string();
    level.size_bytes = c["size_bytes"].integer(1);
    level.shared_by = c["shared_by"].small_int();
    level.instances = c["instances"].small_int();
    level.line_bytes = c["line_bytes"].small_int();
    t.caches.push_back(level);
  }
  t.caches_source = topo["caches_source"].string();
  t.total_memory_bytes = topo["total_memory_bytes"].integer();
  t.notes = topo["notes"].strings();

  const Field meas = root["measured"];
  if (!meas.is_null()) {
    MeasuredPeaks m;
    m.mode = meas["mode"].string();
    if (m.mode != "quick" && m.mode != "full")
      throw Error("field 'measured.mode' must be \"quick\" or \"full\" (got \"" + m.mode + "\")");
    m.seconds = meas["seconds"].number();
    m.load_average = meas["load_average"].number_or_unknown();
    const Field gemm = meas["gemm"];
    m.fp32 = gemm_from(gemm["fp32"], "fp32");
    m.bf16 = gemm_from(gemm["bf16"], "bf16");
    m.int8 = gemm_from(gemm["int8"], "int8");
    const Field bw = meas["memory_bandwidth"];
    m.memory.available = bw["available"].boolean();
    m.memory.reason = bw["reason"].string();
    m.memory.array_bytes = bw["array_bytes"].integer();
    m.memory.one_thread = throughput_from(bw["one_thread"]);
    m.memory.all_threads = throughput_from(bw["all_threads"]);
    if (m.memory.available) {
      check_ran(bw["one_thread"], m.memory.one_thread);
      check_ran(bw["all_threads"], m.memory.all_threads);
    }
    p.measured = m;
  }
  return p;
}

HardwareProfile probe_hardware(bool measure, bool full, const MeasureProgress& progress) {
  HardwareProfile p;
  p.leanai_version = version();
  p.timestamp = utc_timestamp();
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) p.hostname = host;
  struct utsname u {};
  if (uname(&u) == 0) p.os = std::string(u.sysname) + " " + u.release + " " + u.machine;

  p.features = detect_cpu_features();
  try {
    p.cpuinfo_mismatches = compare_with_cpuinfo(p.features, read_cpuinfo_flags());
    p.cpuinfo_checked = true;
  } catch (const Error& e) {
    p.cpuinfo_checked = false;  // no /proc/cpuinfo (not Linux, or /proc not mounted)
    p.topology.notes.push_back(std::string("features not cross-checked: ") + e.what());
  }
  std::vector<std::string> early_notes = std::move(p.topology.notes);
  p.topology = probe_topology();
  p.topology.notes.insert(p.topology.notes.begin(), early_notes.begin(), early_notes.end());
  if (measure)
    p.measured = measure_peaks(full ? MicrobenchConfig::full() : MicrobenchConfig::quick(), p.features, p.topology,
                                progress);
  return p;
}

HardwareProfile load_hardware_profile(const std::string& path) {
  const std::string hint = "; re-run 'leanai hw --out DIR' to write a fresh profile";
  std::error_code ec;
  check(std::filesystem::is_regular_file(path, ec), "cannot open hardware profile '" + path + "': no such file" + hint);
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot open hardware profile '" + path + "': not readable" + hint);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();  // drop nlohmann's "[json.exception.parse_error.101] " prefix
    const size_t tag_end = what.find("] ");
    if (tag_end != std::string::npos) what = what.substr(tag_end + 2);
    throw Error("hardware profile '" + path + "' is not valid JSON (" + what + ")" + hint);
  }
  try {
    return HardwareProfile::from_json(j);
  } catch (const Error& e) {
    throw Error("hardware profile '" + path + "': " + e.what() + hint);
  }
}

void save_hardware_profile(const HardwareProfile& p, const std::string& path) {
  write_text_atomic(path, p.to_json().dump(2) + "\n");
}

}  // namespace leanai
