#include "leanai/data/split.h"

#include <algorithm>
#include <cmath>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/shuffle.h"

namespace leanai {

namespace {

// Rows grouped by class (one group holding all rows for regression).
std::vector<std::vector<int64_t>> strata(const InMemoryDataset& data) {
  if (data.task() != Task::classification) return {iota_indices(data.size())};
  std::vector<std::vector<int64_t>> groups(data.num_outputs());
  const int64_t* y = data.targets().data<int64_t>();
  for (int64_t i = 0; i < data.size(); ++i) groups[y[i]].push_back(i);
  return groups;
}

// How many rows of each group go to validation: proportional, summing to
// exactly `total` (largest remainder; ties to the lower class id).
std::vector<int64_t> val_counts(const std::vector<std::vector<int64_t>>& groups, int64_t total, double fraction) {
  std::vector<int64_t> counts(groups.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const double exact = static_cast<double>(groups[g].size()) * fraction;
    counts[g] = static_cast<int64_t>(std::floor(exact));
    assigned += counts[g];
    remainders.emplace_back(exact - counts[g], g);
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < total && k < remainders.size(); ++k) {
    const size_t g = remainders[k].second;
    if (counts[g] < static_cast<int64_t>(groups[g].size())) {
      ++counts[g];
      ++assigned;
    }
  }
  return counts;
}

}  // namespace

SplitIndices train_val_split_indices(const InMemoryDataset& data, double val_fraction, uint64_t seed) {
  check(val_fraction > 0 && val_fraction < 1,
        "validation fraction must be between 0 and 1 (exclusive), got " + std::to_string(val_fraction));
  const int64_t n = data.size();
  const int64_t total = std::llround(static_cast<double>(n) * val_fraction);
  check(total >= 1 && total < n, "validation fraction " + std::to_string(val_fraction) + " of " + std::to_string(n) +
                                     " samples leaves " + (total < 1 ? "the validation" : "the training") +
                                     " part empty; use more data or another fraction");

  std::vector<std::vector<int64_t>> groups = strata(data);
  const std::vector<int64_t> counts = val_counts(groups, total, val_fraction);
  Rng rng(seed);
  SplitIndices out;
  for (size_t g = 0; g < groups.size(); ++g) {
    shuffle_in_place(groups[g], rng);
    out.val.insert(out.val.end(), groups[g].begin(), groups[g].begin() + counts[g]);
    out.train.insert(out.train.end(), groups[g].begin() + counts[g], groups[g].end());
  }
  // Ascending keeps the file's order inside each part; the batch loader shuffles.
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.val.begin(), out.val.end());
  return out;
}

std::pair<std::shared_ptr<InMemoryDataset>, std::shared_ptr<InMemoryDataset>> train_val_split(
    const InMemoryDataset& data, double val_fraction, uint64_t seed) {
  const SplitIndices idx = train_val_split_indices(data, val_fraction, seed);
  return {data.subset(idx.train), data.subset(idx.val)};
}

}  // namespace leanai
