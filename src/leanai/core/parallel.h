// When our own elementwise loops are worth splitting across threads.
#pragma once
#include <cstdint>

namespace leanai {

// Below this many elements a loop runs on one thread: a memory-bound pass over
// 256K floats takes ~50 us, so waking the pool (a few us when idle, far more
// when the cores are shared with other work) no longer dominates.
constexpr int64_t kParallelMinElements = 1 << 18;

}  // namespace leanai
