#include "leanai/runtime/memory_planner.h"

#include <algorithm>
#include <numeric>

#include "leanai/core/error.h"

namespace leanai {
namespace {

constexpr int64_t kAlign = 64;

int64_t aligned(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

bool overlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), -1);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  std::vector<size_t> placed;
  for (size_t r : order) {
    const BufferRequest& req = requests[r];
    check(req.bytes >= 0 && req.first_step <= req.last_step, "memory planner: bad buffer request");
    plan.unshared_bytes += aligned(req.bytes);
    // Live neighbours, by offset; take the first gap that fits.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t p : placed)
      if (overlap(requests[p], req)) busy.push_back({plan.offsets[p], plan.offsets[p] + aligned(requests[p].bytes)});
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (auto [begin, end] : busy) {
      if (begin - offset >= aligned(req.bytes)) break;
      offset = std::max(offset, end);
    }
    plan.offsets[r] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + aligned(req.bytes));
    placed.push_back(r);
  }
  return plan;
}

}  // namespace leanai
