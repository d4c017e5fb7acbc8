// SampleSchedule: which training rows each epoch visits, and the loss weight
// each gets. The Trainer asks it for an epoch's rows, trains on them, and
// reports every batch's per-sample losses back.
//
//   AllRows          every row, weight 1 (plain training)
//   FixedSubset      a chosen subset (see data/selection.h), weight 1
//   DynamicPruning   InfoBatch (Qin et al., ICLR 2024): each epoch, every
//                    well-learned row (last loss below the mean) is skipped
//                    with probability `ratio`; the well-learned rows that stay
//                    get weight 1 / (1 - ratio), so the expected gradient is
//                    unchanged; the final `anneal` share of epochs trains on
//                    every row. Compute falls without a fixed subset.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "leanai/core/rng.h"
#include <nlohmann/json.hpp>

namespace leanai {

using json = nlohmann::json;

class SampleSchedule {
 public:
  virtual ~SampleSchedule() = default;
  // The rows epoch `epoch` (0-based, of `epochs`) trains on, ascending.
  virtual std::vector<int64_t> rows(int epoch, int epochs) = 0;
  // The loss weight of a row in the current epoch.
  virtual float weight(int64_t) const { return 1.0f; }
  // The training losses of a batch's rows, after its forward pass.
  virtual void observe(const int64_t*, int64_t, const float*) {}
  // For the training log: what the schedule did.
  virtual json summary() const = 0;
};

class AllRows : public SampleSchedule {
 public:
  explicit AllRows(int64_t n) : n_(n) {}
  std::vector<int64_t> rows(int, int) override;
  json summary() const override { return {{"kind", "all"}, {"rows", n_}}; }

 private:
  int64_t n_;
};

class FixedSubset : public SampleSchedule {
 public:
  // Throws Error for an empty subset or rows outside [0, n).
  FixedSubset(std::vector<int64_t> rows, int64_t n);
  std::vector<int64_t> rows(int, int) override { return rows_; }
  json summary() const override;

 private:
  std::vector<int64_t> rows_;
  int64_t n_;
};

struct DynamicPruningConfig {
  double ratio = 0.5;    // probability of skipping a well-learned row, in [0, 1)
  double anneal = 0.125; // final share of epochs on every row, in [0, 1]
  uint64_t seed = 0;
};

class DynamicPruning : public SampleSchedule {
 public:
  DynamicPruning(int64_t n, DynamicPruningConfig cfg);
  std::vector<int64_t> rows(int epoch, int epochs) override;
  float weight(int64_t row) const override { return weight_[row]; }
  void observe(const int64_t* rows, int64_t n, const float* losses) override;
  json summary() const override;

  // Rows skipped in each epoch so far.
  const std::vector<int64_t>& skipped_per_epoch() const { return skipped_; }

 private:
  DynamicPruningConfig cfg_;
  std::vector<float> loss_;     // last observed training loss per row
  std::vector<uint8_t> seen_;   // rows never trained on are never skipped
  std::vector<float> weight_;   // this epoch's loss weight per row
  std::vector<int64_t> skipped_;
};

}  // namespace leanai
