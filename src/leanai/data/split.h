// Train/validation split: shuffled with a seeded leanai::Rng (same seed, same
// split), stratified by class for classification so each class keeps its
// share in both parts.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "leanai/data/dataset.h"

namespace leanai {

struct SplitIndices {
  std::vector<int64_t> train, val;  // disjoint, together every row once, each ascending
};

// Which rows go where. val gets round(N * val_fraction) rows; per class the
// count is proportional (largest remainder). Throws Error when val_fraction
// is not in (0, 1) or either part would be empty.
SplitIndices train_val_split_indices(const InMemoryDataset& data, double val_fraction, uint64_t seed);

// The two parts as new datasets (copies): {train, val}.
std::pair<std::shared_ptr<InMemoryDataset>, std::shared_ptr<InMemoryDataset>> train_val_split(
    const InMemoryDataset& data, double val_fraction, uint64_t seed);

}  // namespace leanai
