// Fisher-Yates with leanai::Rng, so a seed gives the same order everywhere
// (std::shuffle's result differs between standard libraries).
#pragma once
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "leanai/core/rng.h"

namespace leanai {

inline void shuffle_in_place(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// 0, 1, ..., n-1.
inline std::vector<int64_t> iota_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

}  // namespace leanai
