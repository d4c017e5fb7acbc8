// Empirical Fisher information of the weights: the mean squared gradient of
// the training loss, one value per weight. Sensitivity analysis weighs a
// layer's rounding error by it (a second-order estimate of the loss increase).
#pragma once
#include <map>
#include <string>

#include "leanai/graph/graph.h"

namespace leanai {

// For every trainable parameter of `model` (a classifier's logits graph),
// over x [N, ...] with i64 labels [N], in batches of `batch` samples:
// F = mean over batches of batch * (d mean-loss / d w)^2, which estimates the
// per-sample E[(d loss / d w)^2] without per-sample backward passes. The
// gradients are taken in training mode (batch statistics, dropout on) on a
// copy of the weights; the model is not modified.
std::map<std::string, Tensor> fisher_diagonal(const Graph& model, const Tensor& x, const Tensor& labels,
                                              int64_t batch = 32);

}  // namespace leanai
