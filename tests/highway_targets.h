// Runs a kernel test once per instruction set this CPU runs and the build
// compiled (Highway picks one at run time, so each needs its own run), with 2
// threads so the kernels' threaded paths run too; the CPU's own choice and
// the thread count are restored after.
#pragma once
#include <hwy/targets.h>

#include <functional>

#include "leanai/core/threads.h"

namespace leanai::test_support {

// Calls test(target name) with each target selected; returns how many ran.
inline int for_each_highway_target(const std::function<void(const char* target)>& test) {
  const int threads = num_threads();
  set_num_threads(2);
  int targets = 0;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    ++targets;
    test(hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
  set_num_threads(threads);
  return targets;
}

}  // namespace leanai::test_support
