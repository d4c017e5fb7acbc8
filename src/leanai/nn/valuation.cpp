#include "leanai/nn/valuation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/core/numeric.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/fuse_conv_blocks.h"

namespace leanai {

namespace {

// A graph whose parameters are copies, so training it leaves `g` untouched.
Graph deep_copy(const Graph& g) {
  std::map<std::string, Parameter> params;
  for (const auto& [name, p] : g.params()) params[name] = {p.value.clone(), p.trainable};
  return Graph::from_json(g.to_json(), std::move(params));
}

}  // namespace

void score_rows(const float* logits, int64_t n, int64_t classes, const int64_t* labels, const float* features,
                int64_t dim, bool has_bias, float* entropy, float* el2n, float* grad_norm) {
  for (int64_t r = 0; r < n; ++r) {
    const float* z = logits + r * classes;
    const float lse = log_sum_exp(z, classes);
    double h = 0.0, err2 = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double logp = z[c] - lse;
      const double p = std::exp(logp);
      if (p > 0.0) h -= p * logp;
      const double d = p - (c == labels[r] ? 1.0 : 0.0);
      err2 += d * d;
    }
    // dL/dW = (p - y) h^T and dL/db = p - y, so the Frobenius norm factorizes.
    double feat2 = has_bias ? 1.0 : 0.0;
    const float* f = features + r * dim;
    for (int64_t k = 0; k < dim; ++k) feat2 += static_cast<double>(f[k]) * f[k];
    entropy[r] = static_cast<float>(h);
    el2n[r] = static_cast<float>(std::sqrt(err2));
    grad_norm[r] = static_cast<float>(std::sqrt(err2 * feat2));
  }
}

int last_linear_input(const Graph& model) {
  const Node& out = model.node(model.output());
  check(out.op == "linear", "per-sample gradient norms need a model whose output is a linear layer (this one ends in '" +
                                out.op + "'); use --weights entropy=1 or el2n=1 instead");
  return out.inputs[0];
}

void add_scores(const Graph& model, const Dataset& data, SampleScores& sums, int64_t batch_size) {
  check(data.task() == Task::classification, "sample values are defined for classification data only");
  check(sums.size() == data.size(), "score table has " + std::to_string(sums.size()) + " rows for " +
                                        std::to_string(data.size()) + " samples");
  Graph fused = fuse_conv_blocks(model);
  const int features_node = last_linear_input(fused);
  const bool has_bias = fused.node(fused.output()).inputs.size() > 2;
  Executor ex(fused);
  ex.set_training(false);
  const int64_t k = data.num_outputs();
  Shape xs = data.sample_shape();
  xs.insert(xs.begin(), batch_size);
  Tensor xbuf = Tensor::empty(xs), ybuf = Tensor::empty({batch_size}, DType::i64);
  std::vector<int64_t> idx(batch_size);
  std::vector<float> entropy(batch_size), el2n(batch_size), grad(batch_size);
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t n = std::min(batch_size, data.size() - start);
    std::iota(idx.begin(), idx.begin() + n, start);
    Tensor x = xbuf.slice0(0, n), y = ybuf.slice0(0, n);
    data.gather(idx.data(), n, x, y);
    const Tensor& logits = ex.forward({x});
    check(logits.rank() == 2 && logits.dim(1) == k, "model output " + shape_str(logits.shape()) +
                                                        " does not match the data's " + std::to_string(k) + " classes");
    const Tensor& feats = ex.value(features_node);
    const int64_t* labels = y.data<int64_t>();
    score_rows(logits.data<float>(), n, k, labels, feats.data<float>(), feats.numel() / n, has_bias, entropy.data(),
               el2n.data(), grad.data());
    for (int64_t r = 0; r < n; ++r) {
      sums.label[start + r] = labels[r];
      sums.entropy[start + r] += entropy[r];
      sums.el2n[start + r] += el2n[r];
      sums.grad_norm[start + r] += grad[r];
    }
  }
}

ForgettingTracker::ForgettingTracker(int64_t rows) : forgotten_(rows, 0), last_correct_(rows, -1), ever_correct_(rows, 0) {}

void ForgettingTracker::observe(const int64_t* rows, int64_t n, const Tensor& logits, const int64_t* labels) {
  const int64_t classes = logits.dim(1);
  const float* z = logits.data<float>();
  for (int64_t r = 0; r < n; ++r) {
    const float* row = z + r * classes;
    const int8_t correct = (std::max_element(row, row + classes) - row) == labels[r];
    const int64_t i = rows[r];
    if (last_correct_[i] == 1 && !correct) ++forgotten_[i];
    last_correct_[i] = correct;
    ever_correct_[i] |= correct;
  }
}

std::vector<float> ForgettingTracker::events() const {
  const int32_t most = forgotten_.empty() ? 0 : *std::max_element(forgotten_.begin(), forgotten_.end());
  std::vector<float> out(forgotten_.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(ever_correct_[i] ? forgotten_[i] : most + 1);
  return out;
}

ValueWeights ValueWeights::parse(const std::string& spec) {
  ValueWeights w{0.0, 0.0, 0.0, 0.0};
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    check(eq != std::string::npos, "--weights: '" + item + "' is not name=number (e.g. entropy=0.6,grad_norm=0.4)");
    const std::string name = item.substr(0, eq), num = item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(num.c_str(), &end);
    check(!num.empty() && *end == '\0' && std::isfinite(v) && v >= 0.0,
          "--weights: '" + num + "' for " + name + " is not a non-negative number");
    if (name == "entropy") w.entropy = v;
    else if (name == "grad_norm") w.grad_norm = v;
    else if (name == "el2n") w.el2n = v;
    else if (name == "forgetting") w.forgetting = v;
    else throw Error("--weights: unknown score '" + name + "'; use entropy, grad_norm, el2n or forgetting");
  }
  check(w.entropy + w.grad_norm + w.el2n + w.forgetting > 0.0, "--weights: at least one weight must be positive");
  return w;
}

json ValueWeights::to_json() const {
  return {{"entropy", entropy}, {"grad_norm", grad_norm}, {"el2n", el2n}, {"forgetting", forgetting}};
}

std::vector<float> percentile_ranks(const std::vector<float>& v) {
  const size_t n = v.size();
  std::vector<float> out(n, 0.0f);
  if (n < 2) return out;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && v[order[j + 1]] == v[order[i]]) ++j;
    const float rank = static_cast<float>((i + j) / 2.0 / static_cast<double>(n - 1));
    for (size_t t = i; t <= j; ++t) out[order[t]] = rank;
    i = j + 1;
  }
  return out;
}

void combine_scores(SampleScores& s, const ValueWeights& w) {
  const int64_t n = s.size();
  const double total = w.entropy + w.grad_norm + w.el2n + w.forgetting;
  check(total > 0.0, "value weights are all zero");
  std::vector<double> value(n, 0.0);
  const std::pair<double, const std::vector<float>*> parts[] = {
      {w.entropy, &s.entropy}, {w.grad_norm, &s.grad_norm}, {w.el2n, &s.el2n}, {w.forgetting, &s.forgetting}};
  for (const auto& [weight, column] : parts) {
    if (weight == 0.0) continue;
    const std::vector<float> ranks = percentile_ranks(*column);
    for (int64_t i = 0; i < n; ++i) value[i] += weight * ranks[i];
  }
  for (int64_t i = 0; i < n; ++i) s.value[i] = static_cast<float>(value[i] / total);
}

json Valuation::to_json() const {
  return {{"proxy_samples", proxy_samples}, {"scored_samples", scored_samples}, {"seconds", seconds}};
}

Valuation value_samples(const Graph& model, std::shared_ptr<const Dataset> train, TrainConfig proxy_config,
                        const ValuationConfig& cfg, std::function<void(const StepProgress&)> on_step) {
  check(cfg.proxy_epochs >= 1, "the proxy run needs at least 1 epoch");
  check(train->task() == Task::classification, "sample values are defined for classification data only");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = train->size();
  Graph proxy = deep_copy(model);
  last_linear_input(proxy);  // fail before training, not after it
  proxy_config.epochs = cfg.proxy_epochs;
  proxy_config.augment.reset();
  Trainer trainer(proxy, Task::classification, train->num_outputs(), proxy_config);
  trainer.on_step = std::move(on_step);
  ForgettingTracker forgetting(n);
  trainer.on_batch = [&](const BatchResult& b) {
    forgetting.observe(b.rows, b.size, *b.logits, b.labels->data<int64_t>());
  };
  Valuation v;
  v.scores.resize(n);
  for (int e = 0; e < cfg.proxy_epochs; ++e) {
    trainer.train_epoch(train);
    add_scores(proxy, *train, v.scores, cfg.score_batch);
    v.scored_samples += n;
  }
  const float inv = 1.0f / static_cast<float>(cfg.proxy_epochs);
  for (int64_t i = 0; i < n; ++i) {
    v.scores.entropy[i] *= inv;
    v.scores.el2n[i] *= inv;
    v.scores.grad_norm[i] *= inv;
  }
  v.scores.forgetting = forgetting.events();
  combine_scores(v.scores, cfg.weights);
  v.proxy_samples = trainer.samples_seen();
  v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return v;
}

Valuation score_with_model(const Graph& model, const Dataset& train, const ValuationConfig& cfg) {
  const auto t0 = std::chrono::steady_clock::now();
  Valuation v;
  v.scores.resize(train.size());
  add_scores(model, train, v.scores, cfg.score_batch);
  combine_scores(v.scores, cfg.weights);
  v.scored_samples = train.size();
  v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return v;
}

}  // namespace leanai
