#include "leanai/data/quotas.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace leanai {

std::vector<int64_t> largest_remainder_quotas(const std::vector<int64_t>& sizes, double fraction) {
  std::vector<int64_t> quotas(sizes.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t total_size = 0, assigned = 0;
  for (size_t g = 0; g < sizes.size(); ++g) {
    const double exact = static_cast<double>(sizes[g]) * fraction;
    quotas[g] = static_cast<int64_t>(std::floor(exact));
    assigned += quotas[g];
    total_size += sizes[g];
    remainders.emplace_back(exact - static_cast<double>(quotas[g]), g);
  }
  const int64_t total = std::llround(static_cast<double>(total_size) * fraction);
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < total && k < remainders.size(); ++k) {
    const size_t g = remainders[k].second;
    if (quotas[g] < sizes[g]) {
      ++quotas[g];
      ++assigned;
    }
  }
  return quotas;
}

}  // namespace leanai
