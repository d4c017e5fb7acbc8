#include "leanai/data/standardizer.h"

#include <algorithm>
#include <cmath>

#include "leanai/core/error.h"

namespace leanai {

Standardizer Standardizer::fit(const Tensor& features, std::vector<std::string> feature_names) {
  check(features.defined() && features.dtype() == DType::f32 && features.rank() == 2 && features.is_contiguous(),
        "standardize: expected f32 features {N, F}, got " + shape_str(features.shape()));
  const int64_t n = features.dim(0), f = features.dim(1);
  check(n > 0, "standardize: the training split is empty; nothing to fit the mean and std on");
  check(feature_names.empty() || static_cast<int64_t>(feature_names.size()) == f,
        "standardize: " + std::to_string(feature_names.size()) + " feature names for " + std::to_string(f) + " features");
  const float* x = features.data<float>();
  // Two passes in double: exact enough that a constant column has std ~0.
  std::vector<double> sum(f, 0.0), sq(f, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) sum[j] += x[i * f + j];
  for (int64_t j = 0; j < f; ++j) sum[j] /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) {
      const double d = x[i * f + j] - sum[j];
      sq[j] += d * d;
    }
  Standardizer s;
  s.feature_names_ = std::move(feature_names);
  for (int64_t j = 0; j < f; ++j) {
    const double sd = std::sqrt(sq[j] / static_cast<double>(n));
    s.mean_.push_back(static_cast<float>(sum[j]));
    s.std_.push_back(sd > 1e-8 * std::max(1.0, std::abs(sum[j])) ? static_cast<float>(sd) : 1.0f);
  }
  return s;
}

Standardizer Standardizer::fit(const InMemoryDataset& train, std::vector<std::string> feature_names) {
  return fit(train.features(), std::move(feature_names));
}

Tensor Standardizer::apply(const Tensor& features) const {
  check(features.defined() && features.dtype() == DType::f32 && features.rank() == 2 &&
            features.dim(1) == num_features() && features.is_contiguous(),
        "standardize: expected f32 features {N, " + std::to_string(num_features()) + "}, got " +
            shape_str(features.shape()) + "; the data must have the columns the standardizer was fitted on");
  Tensor out = Tensor::empty(features.shape(), DType::f32);
  const int64_t n = features.dim(0), f = num_features();
  const float* x = features.data<float>();
  float* y = out.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) y[i * f + j] = (x[i * f + j] - mean_[j]) / std_[j];
  return out;
}

std::shared_ptr<InMemoryDataset> Standardizer::apply(const InMemoryDataset& data) const {
  // Targets are shared, not copied: datasets never modify them.
  return std::make_shared<InMemoryDataset>(apply(data.features()), data.targets(), data.task(), data.num_outputs());
}

nlohmann::json Standardizer::to_json() const {
  nlohmann::json j = {{"mean", mean_}, {"std", std_}};
  if (!feature_names_.empty()) j["feature_names"] = feature_names_;
  return j;
}

Standardizer Standardizer::from_json(const nlohmann::json& j) {
  const std::string what = "standardizer JSON: ";
  check(j.is_object() && j.contains("mean") && j.contains("std") && j["mean"].is_array() && j["std"].is_array(),
        what + "needs arrays \"mean\" and \"std\"; the model file is damaged or from another tool");
  Standardizer s;
  try {
    s.mean_ = j["mean"].get<std::vector<float>>();
    s.std_ = j["std"].get<std::vector<float>>();
    if (j.contains("feature_names")) s.feature_names_ = j["feature_names"].get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + "wrong value type (" + std::string(e.what()) + "); the model file is damaged");
  }
  check(s.mean_.size() == s.std_.size(), what + "\"mean\" has " + std::to_string(s.mean_.size()) + " values but \"std\" has " +
                                             std::to_string(s.std_.size()));
  check(s.feature_names_.empty() || s.feature_names_.size() == s.mean_.size(),
        what + "\"feature_names\" has " + std::to_string(s.feature_names_.size()) + " names for " +
            std::to_string(s.mean_.size()) + " features");
  for (size_t i = 0; i < s.std_.size(); ++i)
    check(std::isfinite(s.mean_[i]) && std::isfinite(s.std_[i]) && s.std_[i] > 0,
          what + "feature " + std::to_string(i) + " has mean " + std::to_string(s.mean_[i]) + " and std " +
              std::to_string(s.std_[i]) + "; std must be positive and both finite");
  return s;
}

}  // namespace leanai
