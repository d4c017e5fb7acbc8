// Activation memory planned by liveness: every intermediate value gets an
// offset in one arena, and two values share bytes only when their lifetimes
// (first write .. last read, in step order) do not overlap. Greedy by size,
// largest first, each at the lowest offset that fits (the TFLite arena rule):
// not optimal in general, but within a few percent on chains and residual nets.
#pragma once
#include <cstdint>
#include <vector>

namespace leanai {

struct BufferRequest {
  int64_t bytes = 0;
  int first_step = 0;  // the step that writes it
  int last_step = 0;   // the last step that reads it (>= first_step)
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per request, 64-byte aligned
  int64_t arena_bytes = 0;
  int64_t unshared_bytes = 0;  // what one buffer per value would need
};

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace leanai
