// Choosing between kernels by measurement, remembered across runs.
//
// When two kernels can run a node, the runtime times each on this machine
// (median of a few runs after a warm-up) and keeps the faster. The choice is
// cached in a JSON file keyed by the leanai version, the CPU model, the
// thread count and the node's shape, so the next compile on this machine skips the timing:
//   $LEANAI_CACHE_DIR/kernel_choices.json, else $XDG_CACHE_HOME/leanai/...,
//   else ~/.cache/leanai/... . LEANAI_TUNE=0 turns timing off (first candidate).
// A missing or unreadable cache is not an error: it is measured again.
// LEANAI_TUNE_VERBOSE=1 prints every timing to stderr.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace leanai {

struct KernelCandidate {
  std::string name;            // e.g. "inner_product", "matmul"
  std::function<void()> run;   // one execution on representative memory
};

// Index of the candidate to use for `key` (the CPU and thread count are added
// to the key here). Measures on a cache miss when `measure` is set. The
// candidates are timed in turns; settle_runs untimed runs of a candidate
// before each timed one let it find its data where it leaves it (a net whose
// layer is split keeps half its weights in the other core's cache, and a
// candidate timed straight after that one found them there).
int choose_kernel(const std::string& key, const std::vector<KernelCandidate>& candidates, bool measure,
                  int settle_runs = 0);

std::string kernel_cache_path();

// The index of the candidate the environment variable `env` names (a test or
// a reproducible comparison forcing a kernel, e.g. LEANAI_CONV_KERNEL), or -1
// when it is unset or names none of them.
int forced_kernel(const char* env, const std::vector<KernelCandidate>& candidates);

}  // namespace leanai
