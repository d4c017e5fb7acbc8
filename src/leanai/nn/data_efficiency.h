// Data-efficient training, put together: which rows to train on (a selected
// subset or dynamic pruning), the per-row values that drive selection and
// value-aware augmentation, and what all of it cost.
//
//   DataEfficiencyOptions o;  o.select = "stratified";  o.keep = 0.3;  o.augment = "value-aware";
//   DataEfficiencySetup s = prepare_data_efficiency(o, model, train, train_config);
//   Trainer t(model, task, classes, with_augmentation(train_config, o));
//   s.apply(t);            // schedule and row values
//
// Values come from --scores (a CSV written by `leanai value`) or, when needed
// and not given, from a proxy run whose cost is reported with the training's.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "leanai/data/augment.h"
#include "leanai/data/selection.h"
#include "leanai/nn/sample_schedule.h"
#include "leanai/nn/trainer.h"
#include "leanai/nn/valuation.h"

namespace leanai {

struct DataEfficiencyOptions {
  std::string select;         // "", "top", "stratified", "random"
  SelectConfig selection;     // keep ratio, class balance, bands, hard_prune (method set from select)
  std::string scores_path;    // precomputed scores; empty: proxy run when values are needed
  ValuationConfig valuation;  // proxy epochs and value weights
  std::string augment = "none";  // "none", "light" (crop/flip for all), "value-aware"
  AugmentConfig augment_config;
  std::string prune = "none";    // "none", "dynamic"
  DynamicPruningConfig pruning;
  bool want_scores = false;      // compute values even when nothing above uses them (to write them out)

  // Throws Error for unknown names or combinations that do not fit.
  void validate() const;
  bool needs_values() const {
    return want_scores || (!select.empty() && select != "random") || augment == "value-aware";
  }
  bool active() const { return !select.empty() || augment != "none" || prune != "none"; }
};

// The training config with the augmentation the options ask for.
TrainConfig with_augmentation(TrainConfig config, const DataEfficiencyOptions& o);

struct DataEfficiencySetup {
  std::shared_ptr<SampleSchedule> schedule;  // null: every row
  std::vector<float> row_values;             // for value-aware augmentation
  std::optional<Valuation> valuation;        // scores, when computed or read
  std::optional<Selection> selection;
  void apply(Trainer& trainer) const;
  json summary() const;                      // what was chosen and what the proxy cost
};

DataEfficiencySetup prepare_data_efficiency(const DataEfficiencyOptions& o, const Graph& model,
                                            std::shared_ptr<const InMemoryDataset> train,
                                            const TrainConfig& proxy_config,
                                            std::function<void(const StepProgress&)> on_proxy_step = {});

}  // namespace leanai
