// Per-sample value scores for data-efficient training (one row per training
// sample, addressed by its index in the training set):
//   entropy     prediction entropy of softmax(logits), in nats
//   el2n        ||softmax(logits) - onehot(label)||_2 (EL2N)
//   grad_norm   the per-sample gradient norm of the loss with respect to the
//               last linear layer's weight and bias, in closed form (GraNd at
//               the last layer): ||p - y|| * sqrt(||h||^2 + 1), h = that
//               layer's input
//   forgetting  forgetting events during the proxy run: how often a sample
//               went from correctly to wrongly classified between two of its
//               presentations (never-learned samples get the maximum + 1)
//   value       the weighted combination of the normalized scores (see
//               combine_scores in valuation.h)
// Scores are averaged over the epochs of a short proxy run, not taken at
// initialization, where gradient norms say little.
#pragma once
#include <cstdint>
#include <vector>

namespace leanai {

struct SampleScores {
  std::vector<int64_t> label;  // class id per sample
  std::vector<float> entropy, el2n, grad_norm, forgetting, value;

  int64_t size() const { return static_cast<int64_t>(label.size()); }
  // Every column sized n, zero-filled (labels -1).
  void resize(int64_t n) {
    label.assign(n, -1);
    for (auto* c : {&entropy, &el2n, &grad_norm, &forgetting, &value}) c->assign(n, 0.0f);
  }
};

}  // namespace leanai
