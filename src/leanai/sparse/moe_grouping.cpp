#include "leanai/sparse/moe_grouping.h"

#include <algorithm>
#include <cmath>

namespace leanai {

int64_t expert_capacity(double capacity_factor, int64_t tokens, int64_t experts, int64_t top_k) {
  if (capacity_factor <= 0.0) return tokens;
  const double cap = std::ceil(capacity_factor * static_cast<double>(tokens * top_k) / static_cast<double>(experts));
  return std::min<int64_t>(tokens, static_cast<int64_t>(cap));
}

void group_by_expert(MoeRouting& r, int64_t capacity) {
  const int64_t E = r.experts, k = r.top_k, pairs = r.pairs();
  std::fill(r.chosen.begin(), r.chosen.end(), 0);
  for (int64_t p = 0; p < pairs; ++p) r.chosen[r.expert[p]]++;
  r.begin[0] = 0;
  for (int64_t e = 0; e < E; ++e) r.begin[e + 1] = r.begin[e] + r.chosen[e];
  // Place the pairs; r.kept serves as each block's write cursor meanwhile.
  std::copy(r.begin.begin(), r.begin.end() - 1, r.kept.begin());
  for (int64_t p = 0; p < pairs; ++p) r.pair[r.kept[r.expert[p]]++] = static_cast<int32_t>(p);

  for (int64_t e = 0; e < E; ++e) {
    r.kept[e] = std::min(r.chosen[e], capacity);
    if (r.chosen[e] <= capacity) continue;
    // Overflow: the highest affinities first, then the kept ones back in token order.
    int32_t* block = r.pair.data() + r.begin[e];
    const float* s = r.affinity.data();
    std::sort(block, block + r.chosen[e], [&](int32_t a, int32_t b) {
      const float sa = s[(a / k) * E + e], sb = s[(b / k) * E + e];
      return sa != sb ? sa > sb : a < b;
    });
    std::sort(block, block + r.kept[e]);
  }
  for (int64_t e = 0; e < E; ++e)
    for (int64_t q = r.begin[e]; q < r.begin[e + 1]; ++q)
      r.row[r.pair[q]] = q < r.begin[e] + r.kept[e] ? static_cast<int32_t>(q) : -1;
}

}  // namespace leanai
