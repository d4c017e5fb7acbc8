#include "leanai/hw/topology.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "leanai/core/error.h"

namespace leanai {
namespace fs = std::filesystem;

namespace {

// The first line of a small file, trimmed; nullopt when it cannot be read.
std::optional<std::string> read_line(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t b = 0;
  while (b < line.size() && std::isspace(static_cast<unsigned char>(line[b]))) ++b;
  return line.substr(b);
}

std::optional<long long> read_int(const fs::path& path) {
  auto s = read_line(path);
  if (!s || s->empty()) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(s->c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return v;
}

fs::path cpu_dir(const TopologySources& src, int cpu) { return fs::path(src.sysfs_cpu) / ("cpu" + std::to_string(cpu)); }

// Per processor in /proc/cpuinfo: its key -> value pairs.
std::vector<std::map<std::string, std::string>> read_cpuinfo_blocks(const std::string& path) {
  std::vector<std::map<std::string, std::string>> blocks;
  std::ifstream in(path);
  if (!in) return blocks;
  std::map<std::string, std::string> cur;
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      if (!cur.empty()) blocks.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(0, 1);
    cur[key] = value;
  }
  if (!cur.empty()) blocks.push_back(std::move(cur));
  return blocks;
}

void count_cores(const TopologySources& src, const std::vector<int>& online, CpuTopology& t) {
  // sysfs: one physical core per distinct set of hardware threads (core_cpus_list,
  // or thread_siblings_list on older kernels); one socket per package id.
  std::set<std::string> cores;
  std::set<long long> packages;
  bool complete = !online.empty();
  for (int cpu : online) {
    const fs::path topo = cpu_dir(src, cpu) / "topology";
    auto siblings = read_line(topo / "core_cpus_list");
    if (!siblings) siblings = read_line(topo / "thread_siblings_list");
    const auto package = read_int(topo / "physical_package_id");
    if (!siblings || !package) {
      complete = false;
      break;
    }
    cores.insert(std::to_string(*package) + ":" + *siblings);
    packages.insert(*package);
  }
  if (complete) {
    t.physical_cores = static_cast<int>(cores.size());
    t.sockets = static_cast<int>(packages.size());
    t.cores_source = "sysfs";
  } else {
    // /proc/cpuinfo: distinct (physical id, core id) pairs.
    std::set<std::pair<std::string, std::string>> pairs;
    std::set<std::string> ids;
    bool ok = true;
    const auto blocks = read_cpuinfo_blocks(src.cpuinfo);
    for (const auto& b : blocks) {
      if (!b.count("processor")) continue;
      auto p = b.find("physical id"), c = b.find("core id");
      if (p == b.end() || c == b.end()) {
        ok = false;
        break;
      }
      pairs.insert({p->second, c->second});
      ids.insert(p->second);
    }
    if (ok && !pairs.empty()) {
      t.physical_cores = static_cast<int>(pairs.size());
      t.sockets = static_cast<int>(ids.size());
      t.cores_source = "/proc/cpuinfo";
      t.notes.push_back("sysfs has no CPU topology; physical cores counted from /proc/cpuinfo (physical id, core id)");
    } else {
      t.cores_source = "unknown";
      t.notes.push_back(
          "neither sysfs topology nor /proc/cpuinfo core ids are available: physical cores and sockets unknown "
          "(reported as 0; use logical CPUs)");
    }
  }
  if (t.physical_cores > 0 && t.logical_cpus % t.physical_cores == 0)
    t.threads_per_core = t.logical_cpus / t.physical_cores;
}

void read_caches(const TopologySources& src, const std::vector<int>& online, CpuTopology& t) {
  const int first = online.empty() ? 0 : online.front();
  const fs::path cache_root = cpu_dir(src, first) / "cache";
  std::error_code ec;
  std::vector<fs::path> indices;
  if (fs::is_directory(cache_root, ec))
    for (const auto& e : fs::directory_iterator(cache_root, ec))
      if (e.path().filename().string().rfind("index", 0) == 0) indices.push_back(e.path());
  std::sort(indices.begin(), indices.end());
  for (const fs::path& idx : indices) {
    const auto level = read_int(idx / "level");
    const auto type = read_line(idx / "type");
    const auto size = read_line(idx / "size");
    if (!level || !type || !size || size->empty()) {
      t.notes.push_back("sysfs cache entry " + idx.string() + " is incomplete; skipped");
      continue;
    }
    if (*type == "Instruction") continue;
    CacheLevel c;
    c.level = static_cast<int>(*level);
    c.type = *type;
    try {
      c.size_bytes = parse_cache_size(*size);
    } catch (const Error&) {
      t.notes.push_back("sysfs cache size '" + *size + "' in " + idx.string() + " is not understood; skipped");
      continue;
    }
    if (auto line = read_int(idx / "coherency_line_size")) c.line_bytes = static_cast<int>(*line);
    if (auto shared = read_line(idx / "shared_cpu_list")) {
      try {
        c.shared_by = static_cast<int>(parse_cpu_list(*shared).size());
      } catch (const Error&) {
      }
    }
    // Instances: distinct sharing sets of this cache index over the online CPUs.
    std::set<std::string> sets;
    bool all = true;
    for (int cpu : online) {
      auto s = read_line(cpu_dir(src, cpu) / "cache" / idx.filename() / "shared_cpu_list");
      if (!s) {
        all = false;
        break;
      }
      sets.insert(*s);
    }
    if (all) c.instances = static_cast<int>(sets.size());
    if (c.shared_by == 0 || c.instances == 0)
      t.notes.push_back("L" + std::to_string(c.level) + " cache sharing is not reported by sysfs");
    t.caches.push_back(c);
  }
  if (!t.caches.empty()) {
    t.caches_source = "sysfs";
    return;
  }
  // glibc's sysconf reads CPUID cache descriptors; it knows sizes, not sharing.
  const std::pair<int, int> levels[] = {{1, _SC_LEVEL1_DCACHE_SIZE}, {2, _SC_LEVEL2_CACHE_SIZE}, {3, _SC_LEVEL3_CACHE_SIZE}};
  for (auto [level, name] : levels) {
    const long v = sysconf(name);
    if (v <= 0) continue;
    CacheLevel c;
    c.level = level;
    c.type = level == 1 ? "Data" : "Unified";
    c.size_bytes = v;
    t.caches.push_back(c);
  }
  if (!t.caches.empty()) {
    t.caches_source = "sysconf";
    t.notes.push_back("sysfs lists no caches under " + cache_root.string() +
                      "; cache sizes come from glibc sysconf (CPUID), sharing unknown");
  } else {
    t.caches_source = "unavailable";
    t.notes.push_back("no cache information (sysfs lists none under " + cache_root.string() +
                      ", sysconf reports none): cache sizes unknown");
  }
}

int64_t read_total_memory(const TopologySources& src, CpuTopology& t) {
  std::ifstream in(src.meminfo);
  for (std::string line; in && std::getline(in, line);) {
    if (line.rfind("MemTotal:", 0) != 0) continue;
    std::istringstream words(line.substr(9));
    long long kb = 0;
    std::string unit;
    if (words >> kb >> unit && kb > 0 && unit == "kB") return kb * 1024;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  t.notes.push_back("no MemTotal in " + src.meminfo + "; total memory from sysconf");
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

}  // namespace

int64_t CpuTopology::cache_bytes(int level) const {
  for (const CacheLevel& c : caches)
    if (c.level == level && c.type != "Instruction") return c.size_bytes;
  return 0;
}

std::vector<int> parse_cpu_list(const std::string& text) {
  std::vector<int> cpus;
  auto bad = [&] { return Error("malformed CPU list '" + text + "' (expected e.g. 0-3,8)"); };
  std::string s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  if (s.empty()) return cpus;
  std::istringstream parts(s);
  for (std::string part; std::getline(parts, part, ',');) {
    const size_t dash = part.find('-');
    auto num = [&](const std::string& n) {
      if (n.empty() || n.size() > 6 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw bad();
      return std::stoi(n);
    };
    const int lo = num(part.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : num(part.substr(dash + 1));
    if (hi < lo) throw bad();
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

int64_t parse_cache_size(const std::string& text) {
  size_t i = 0;
  int64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 15) v = v * 10 + (text[i++] - '0');
  check(i > 0, "malformed cache size '" + text + "'");
  const std::string unit = text.substr(i);
  if (unit.empty()) return v;
  if (unit == "K" || unit == "KB" || unit == "KiB") return v << 10;
  if (unit == "M" || unit == "MB" || unit == "MiB") return v << 20;
  if (unit == "G" || unit == "GB" || unit == "GiB") return v << 30;
  throw Error("malformed cache size '" + text + "' (unknown unit '" + unit + "')");
}

CpuTopology probe_topology(const TopologySources& src) {
  CpuTopology t;
  std::vector<int> online;
  if (auto list = read_line(fs::path(src.sysfs_cpu) / "online")) {
    try {
      online = parse_cpu_list(*list);
    } catch (const Error&) {
    }
  }
  if (!online.empty()) {
    t.logical_cpus = static_cast<int>(online.size());
  } else {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    t.logical_cpus = n > 0 ? static_cast<int>(n) : 1;
    for (int i = 0; i < t.logical_cpus; ++i) online.push_back(i);
    t.notes.push_back("no readable " + src.sysfs_cpu + "/online; logical CPUs from sysconf");
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  t.affinity_cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : t.logical_cpus;
  count_cores(src, online, t);
  read_caches(src, online, t);
  t.total_memory_bytes = read_total_memory(src, t);
  return t;
}

}  // namespace leanai
