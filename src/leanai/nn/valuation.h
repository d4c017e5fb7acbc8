// Valuation: per-sample value scores (see data/sample_scores.h) from a short
// proxy run.
//
//   ValuationConfig cfg;                    // 2 proxy epochs, value = 0.6 entropy + 0.4 grad_norm
//   Valuation v = value_samples(model, train, proxy_train_config, cfg);
//   v.scores.value[i]                       // in [0, 1]; higher = more valuable
//
// The proxy trains a copy of the model; after each proxy epoch every training
// row is scored in eval mode, and the scores are averaged over those epochs
// (gradient norms at initialization are no better than random: Paul et al.
// 2021). Forgetting events are counted from the training presentations.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "leanai/data/dataset.h"
#include "leanai/data/sample_scores.h"
#include "leanai/graph/graph.h"
#include "leanai/nn/trainer.h"

namespace leanai {

// Closed-form scores of n rows: logits [n, classes], labels, and the last
// linear layer's input features [n, dim] (has_bias: that layer has a bias,
// whose gradient p - y adds 1 to ||h||^2).
void score_rows(const float* logits, int64_t n, int64_t classes, const int64_t* labels, const float* features,
                int64_t dim, bool has_bias, float* entropy, float* el2n, float* grad_norm);

// The node whose output feeds the model's final linear layer. Throws Error
// when the output is not a linear layer (grad_norm needs one).
int last_linear_input(const Graph& model);

// Scores every row of data with the model in eval mode and adds the scores to
// sums (entropy, el2n, grad_norm; labels are set).
void add_scores(const Graph& model, const Dataset& data, SampleScores& sums, int64_t batch_size = 1000);

// Forgetting events (Toneva et al., ICLR 2019): a row is forgotten when it was
// classified correctly at one presentation and wrongly at its next.
class ForgettingTracker {
 public:
  explicit ForgettingTracker(int64_t rows);
  void observe(const int64_t* rows, int64_t n, const Tensor& logits, const int64_t* labels);
  // Events per row; rows never classified correctly get the maximum + 1.
  std::vector<float> events() const;

 private:
  std::vector<int32_t> forgotten_;
  std::vector<int8_t> last_correct_;  // -1: not presented yet
  std::vector<uint8_t> ever_correct_;
};

// Weights of the value combination; the user's design is 0.6 entropy + 0.4 grad_norm.
struct ValueWeights {
  double entropy = 0.6, grad_norm = 0.4, el2n = 0.0, forgetting = 0.0;
  // "entropy=0.6,grad_norm=0.4" (names: entropy, grad_norm, el2n, forgetting;
  // unnamed ones become 0). Throws Error for unknown names, negative or all-zero weights.
  static ValueWeights parse(const std::string& spec);
  json to_json() const;
};

// Percentile rank of each value in [0, 1] (ties share their mean rank).
std::vector<float> percentile_ranks(const std::vector<float>& v);

// value = sum_k w_k * rank_k / sum_k w_k over the percentile ranks of the
// scores, so scores on different scales (nats, norms, counts) mix fairly.
void combine_scores(SampleScores& s, const ValueWeights& w);

struct ValuationConfig {
  int proxy_epochs = 2;
  ValueWeights weights;
  int64_t score_batch = 1000;
};

struct Valuation {
  SampleScores scores;
  int64_t proxy_samples = 0;   // sample-gradient steps of the proxy run
  int64_t scored_samples = 0;  // forward-only passes used for scoring
  double seconds = 0;
  json to_json() const;        // the costs, for training summaries
};

// Trains a copy of `model` for cfg.proxy_epochs with proxy_config (its epochs
// are overridden) and scores every row of `train` after each epoch.
Valuation value_samples(const Graph& model, std::shared_ptr<const Dataset> train, TrainConfig proxy_config,
                        const ValuationConfig& cfg, std::function<void(const StepProgress&)> on_step = {});

// One snapshot with an already trained model (no proxy run; forgetting 0).
Valuation score_with_model(const Graph& model, const Dataset& train, const ValuationConfig& cfg);

}  // namespace leanai
