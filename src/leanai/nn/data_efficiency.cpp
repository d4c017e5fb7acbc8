#include "leanai/nn/data_efficiency.h"

#include "leanai/core/error.h"
#include "leanai/data/score_csv.h"

namespace leanai {

void DataEfficiencyOptions::validate() const {
  if (!select.empty()) parse_select_method(select);
  check(augment == "none" || augment == "light" || augment == "value-aware",
        "--augment must be none, light or value-aware, got '" + augment + "'");
  check(prune == "none" || prune == "dynamic", "--prune must be none or dynamic, got '" + prune + "'");
  check(select.empty() || prune == "none",
        "choose either --select (a fixed subset) or --prune dynamic (a changing one), not both");
  check(select.empty() || (selection.keep > 0.0 && selection.keep <= 1.0), "--keep must be in (0, 1]");
}

TrainConfig with_augmentation(TrainConfig config, const DataEfficiencyOptions& o) {
  if (o.augment == "none") {
    config.augment.reset();
    return config;
  }
  AugmentConfig a = o.augment_config;
  a.value_aware = o.augment == "value-aware";
  config.augment = a;
  return config;
}

void DataEfficiencySetup::apply(Trainer& trainer) const {
  if (schedule) trainer.set_sample_schedule(schedule);
  if (!row_values.empty()) trainer.set_row_values(row_values);
}

json DataEfficiencySetup::summary() const {
  json j = json::object();
  if (schedule) j["schedule"] = schedule->summary();
  if (valuation) j["valuation"] = valuation->to_json();
  if (selection) j["selected"] = static_cast<int64_t>(selection->indices.size());
  return j;
}

DataEfficiencySetup prepare_data_efficiency(const DataEfficiencyOptions& o, const Graph& model,
                                            std::shared_ptr<const InMemoryDataset> train,
                                            const TrainConfig& proxy_config,
                                            std::function<void(const StepProgress&)> on_proxy_step) {
  o.validate();
  check(train->task() == Task::classification, "--select, --augment and --prune apply to classification only");
  DataEfficiencySetup s;
  const int64_t n = train->size();
  if (o.needs_values()) {
    if (!o.scores_path.empty()) {
      Valuation v;
      v.scores = read_scores_csv(o.scores_path, n);
      const int64_t* labels = train->targets().data<int64_t>();
      for (int64_t i = 0; i < n; ++i)
        check(v.scores.label[i] == labels[i], o.scores_path + ": row " + std::to_string(i) +
                                                  " has label " + std::to_string(v.scores.label[i]) +
                                                  " but the training set has " + std::to_string(labels[i]) +
                                                  "; the scores belong to other data (or another split seed)");
      s.valuation = std::move(v);
    } else {
      s.valuation = value_samples(model, train, proxy_config, o.valuation, std::move(on_proxy_step));
    }
    s.row_values = s.valuation->scores.value;
  }
  if (!o.select.empty()) {
    SelectConfig cfg = o.selection;
    cfg.method = parse_select_method(o.select);
    const int64_t* labels = train->targets().data<int64_t>();
    std::vector<int64_t> label_vec(labels, labels + n);
    // Random selection needs no values; the others rank by them.
    std::vector<float> values = s.row_values.empty() ? std::vector<float>(n, 0.0f) : s.row_values;
    s.selection = select_samples(values, label_vec, cfg);
    s.schedule = std::make_shared<FixedSubset>(s.selection->indices, n);
  } else if (o.prune == "dynamic") {
    s.schedule = std::make_shared<DynamicPruning>(n, o.pruning);
  }
  return s;
}

}  // namespace leanai
