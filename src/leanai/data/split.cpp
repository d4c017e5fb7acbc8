#include "leanai/data/split.h"

#include <algorithm>
#include <cmath>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/quotas.h"
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
  std::vector<int64_t> sizes;
  for (const auto& g : groups) sizes.push_back(static_cast<int64_t>(g.size()));
  const std::vector<int64_t> counts = largest_remainder_quotas(sizes, val_fraction);  // sums to total
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
