#include "leanai/nn/sample_schedule.h"

#include <cmath>

#include "leanai/core/error.h"
#include "leanai/data/shuffle.h"

namespace leanai {

std::vector<int64_t> AllRows::rows(int, int) { return iota_indices(n_); }

FixedSubset::FixedSubset(std::vector<int64_t> rows, int64_t n) : rows_(std::move(rows)), n_(n) {
  check(!rows_.empty(), "the selected subset is empty; raise --keep");
  for (int64_t r : rows_)
    check(r >= 0 && r < n, "selected row " + std::to_string(r) + " is outside the training set of " +
                               std::to_string(n) + " samples");
}

json FixedSubset::summary() const {
  return {{"kind", "subset"}, {"rows", static_cast<int64_t>(rows_.size())}, {"of", n_}};
}

DynamicPruning::DynamicPruning(int64_t n, DynamicPruningConfig cfg)
    : cfg_(cfg), loss_(n, 0.0f), seen_(n, 0), weight_(n, 1.0f) {
  check(cfg_.ratio >= 0.0 && cfg_.ratio < 1.0, "dynamic pruning ratio must be in [0, 1)");
  check(cfg_.anneal >= 0.0 && cfg_.anneal <= 1.0, "dynamic pruning anneal share must be in [0, 1]");
}

std::vector<int64_t> DynamicPruning::rows(int epoch, int epochs) {
  const int64_t n = static_cast<int64_t>(loss_.size());
  std::fill(weight_.begin(), weight_.end(), 1.0f);
  // The last `anneal` share of epochs sees everything: InfoBatch's annealing,
  // which removes the small bias the rescaled gradient still carries.
  const int full_from = static_cast<int>(std::ceil(epochs * (1.0 - cfg_.anneal) - 1e-9));
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    if (seen_[i]) sum += loss_[i], ++count;
  if (epoch >= full_from || count == 0) {
    skipped_.push_back(0);
    return iota_indices(n);
  }
  const float mean = static_cast<float>(sum / static_cast<double>(count));
  const float keep_weight = static_cast<float>(1.0 / (1.0 - cfg_.ratio));
  Rng rng(cfg_.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) + 1);
  std::vector<int64_t> kept;
  kept.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const bool well_learned = seen_[i] && loss_[i] < mean;
    if (!well_learned) {
      kept.push_back(i);
    } else if (rng.uniform() >= cfg_.ratio) {
      kept.push_back(i);
      weight_[i] = keep_weight;
    }
  }
  skipped_.push_back(n - static_cast<int64_t>(kept.size()));
  return kept;
}

void DynamicPruning::observe(const int64_t* rows, int64_t n, const float* losses) {
  for (int64_t i = 0; i < n; ++i) {
    loss_[rows[i]] = losses[i];
    seen_[rows[i]] = 1;
  }
}

json DynamicPruning::summary() const {
  return {{"kind", "dynamic"}, {"ratio", cfg_.ratio}, {"anneal", cfg_.anneal}, {"skipped_per_epoch", skipped_}};
}

}  // namespace leanai
