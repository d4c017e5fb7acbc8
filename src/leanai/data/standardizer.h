// Standardizer: per-feature (x - mean) / std, fitted on a training split only
// so nothing about the test rows leaks into training. It is saved with a
// model (to_json) so predictions see inputs scaled the same way.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leanai/core/tensor.h"
#include "leanai/data/dataset.h"

namespace leanai {

class Standardizer {
 public:
  Standardizer() = default;
  // Mean and population std of each feature of f32 features {N, F}.
  // A (near) constant feature gets std 1, so it maps to 0 instead of blowing up.
  static Standardizer fit(const Tensor& features, std::vector<std::string> feature_names = {});
  static Standardizer fit(const InMemoryDataset& train, std::vector<std::string> feature_names = {});

  // A standardized copy of features {N, F}.
  Tensor apply(const Tensor& features) const;
  // A copy of the dataset with standardized features and the same targets.
  std::shared_ptr<InMemoryDataset> apply(const InMemoryDataset& data) const;

  int64_t num_features() const { return static_cast<int64_t>(mean_.size()); }
  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& stddev() const { return std_; }
  const std::vector<std::string>& feature_names() const { return feature_names_; }

  // {"mean": [...], "std": [...], "feature_names": [...]}
  nlohmann::json to_json() const;
  // Throws Error when the JSON lacks those arrays, their lengths differ, or a std is not positive.
  static Standardizer from_json(const nlohmann::json& j);

 private:
  std::vector<float> mean_, std_;
  std::vector<std::string> feature_names_;  // may be empty
};

}  // namespace leanai
