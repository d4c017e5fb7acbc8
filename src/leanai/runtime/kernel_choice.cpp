#include "leanai/runtime/kernel_choice.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "leanai/core/threads.h"
#include "leanai/core/version.h"
#include "leanai/hw/cpu_features.h"
#include "leanai/io/atomic_file.h"

namespace leanai {
namespace {

using json = nlohmann::json;

constexpr int kWarmup = 3;
constexpr int kTimedRuns = 15;  // rounds

// Median milliseconds of each candidate, timed in turns (one run of each per
// round), so a slow spell of a shared machine hits every candidate alike;
// each timed run after `settle_runs` untimed ones of the same candidate.
std::vector<double> median_ms(const std::vector<KernelCandidate>& candidates, int settle_runs) {
  for (const KernelCandidate& c : candidates)
    for (int i = 0; i < kWarmup; ++i) c.run();
  std::vector<std::vector<double>> ms(candidates.size());
  for (int round = 0; round < kTimedRuns; ++round)
    for (size_t i = 0; i < candidates.size(); ++i) {
      for (int r = 0; r < settle_runs; ++r) candidates[i].run();
      auto t0 = std::chrono::steady_clock::now();
      candidates[i].run();
      ms[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<double> medians;
  for (auto& v : ms) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    medians.push_back(v[v.size() / 2]);
  }
  return medians;
}

json load_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return json::object();
  json j = json::parse(in, nullptr, false);
  return j.is_object() ? j : json::object();  // a damaged cache is re-measured, not fatal
}

std::mutex cache_mutex;

}  // namespace

std::string kernel_cache_path() {
  if (const char* dir = std::getenv("LEANAI_CACHE_DIR"); dir && *dir) return std::string(dir) + "/kernel_choices.json";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/leanai/kernel_choices.json";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/leanai/kernel_choices.json";
  return "";
}

int forced_kernel(const char* env, const std::vector<KernelCandidate>& candidates) {
  const char* name = std::getenv(env);
  if (!name || !*name) return -1;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (candidates[i].name == name) return static_cast<int>(i);
  return -1;
}

int choose_kernel(const std::string& key, const std::vector<KernelCandidate>& candidates, bool measure,
                  int settle_runs) {
  if (candidates.size() <= 1) return 0;
  if (const char* tune = std::getenv("LEANAI_TUNE"); tune && std::string(tune) == "0") measure = false;
  static const std::string cpu = detect_cpu_features().model_name;
  // The version too: a new release's kernels may change which candidate wins.
  const std::string full_key = std::string("leanai ") + version() + " | " + cpu + " | threads " + std::to_string(num_threads()) + " | " + key;
  const std::string path = kernel_cache_path();
  {
    // Not held while measuring: a candidate may compile plans that choose kernels themselves.
    std::lock_guard<std::mutex> lock(cache_mutex);
    json cache = path.empty() ? json::object() : load_cache(path);
    if (cache.contains(full_key) && cache[full_key].is_string()) {
      for (size_t i = 0; i < candidates.size(); ++i)
        if (candidates[i].name == cache[full_key].get<std::string>()) return static_cast<int>(i);
    }
  }
  if (!measure) return 0;
  const std::vector<double> ms = median_ms(candidates, settle_runs);
  const int best = static_cast<int>(std::min_element(ms.begin(), ms.end()) - ms.begin());
  if (const char* verbose = std::getenv("LEANAI_TUNE_VERBOSE"); verbose && *verbose == '1')
    for (size_t i = 0; i < candidates.size(); ++i)
      std::fprintf(stderr, "leanai: tune %s: %s %.4f ms%s\n", key.c_str(), candidates[i].name.c_str(), ms[i],
                   static_cast<int>(i) == best ? " <- chosen" : "");
  if (!path.empty()) {
    std::lock_guard<std::mutex> lock(cache_mutex);
    json cache = load_cache(path);  // re-read: choices made while this one was measured stay
    cache[full_key] = candidates[best].name;
    try {
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      write_text_atomic(path, cache.dump(1));
    } catch (const std::exception&) {
      // An unwritable cache costs a re-measurement next time, nothing more.
    }
  }
  return best;
}

}  // namespace leanai
