// Cores, caches and memory of this machine, from Linux's sysfs
// (/sys/devices/system/cpu) with /proc/cpuinfo and sysconf as fallbacks.
// What could not be read is left 0 and said in `notes`, never guessed.
//
//   CpuTopology t = probe_topology();
//   t.physical_cores; t.cache_bytes(2);   // L2 per instance, 0 if unknown
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leanai {

struct CacheLevel {
  int level = 0;          // 1, 2, 3, ...
  std::string type;       // "Data", "Instruction" or "Unified"
  int64_t size_bytes = 0; // one instance
  int shared_by = 0;      // logical CPUs sharing one instance
  int instances = 0;      // instances over the online CPUs
  int line_bytes = 0;     // 0 if not reported
};

struct CpuTopology {
  int logical_cpus = 0;     // online logical CPUs
  int affinity_cpus = 0;    // CPUs this process may run on (cgroups/taskset), what threads get
  int physical_cores = 0;
  int sockets = 0;
  int threads_per_core = 0;
  std::string cores_source;  // where physical_cores came from ("sysfs", "/proc/cpuinfo", "unknown")
  std::vector<CacheLevel> caches;  // data and unified caches as sysfs lists them for cpu0
  std::string caches_source;       // "sysfs" or "unavailable"
  int64_t total_memory_bytes = 0;
  std::vector<std::string> notes;  // every fallback taken, in words

  // Size of one instance of the level-`level` data/unified cache; 0 if unknown.
  int64_t cache_bytes(int level) const;
};

// Where to read from; tests point these at a fake tree.
struct TopologySources {
  std::string sysfs_cpu = "/sys/devices/system/cpu";
  std::string cpuinfo = "/proc/cpuinfo";
  std::string meminfo = "/proc/meminfo";
};

CpuTopology probe_topology(const TopologySources& src = {});

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; throws Error on malformed text.
std::vector<int> parse_cpu_list(const std::string& text);
// sysfs cache sizes: "32K", "1024K", "32M", "512" -> bytes; throws Error on malformed text.
int64_t parse_cache_size(const std::string& text);

}  // namespace leanai
