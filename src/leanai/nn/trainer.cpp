#include "leanai/core/numeric.h"
#include "leanai/nn/trainer.h"

#include <chrono>
#include <cmath>
#include <numeric>

#include "leanai/core/error.h"
#include "leanai/data/batch_loader.h"
#include "leanai/data/shuffle.h"
#include "leanai/graph/passes/fuse_conv_blocks.h"

namespace leanai {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Correct predictions in a [n, classes] logits block.
int64_t count_correct(const Tensor& logits, const Tensor& labels, int64_t n) {
  const int64_t classes = logits.dim(1);
  const float* x = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * classes;
    correct += (std::max_element(row, row + classes) - row) == y[r];
  }
  return correct;
}

// Per-sample cross-entropy of logits [n, classes] against class ids or, when
// soft is given, label distributions [n, classes].
void per_sample_loss(const Tensor& logits, const int64_t* labels, const float* soft, int64_t n, float* out) {
  const int64_t classes = logits.dim(1);
  const float* x = logits.data<float>();
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * classes;
    const float lse = log_sum_exp(row, classes);
    if (!soft) {
      out[r] = lse - row[labels[r]];
      continue;
    }
    double loss = 0.0;
    for (int64_t c = 0; c < classes; ++c) loss += soft[r * classes + c] * (lse - row[c]);
    out[r] = static_cast<float>(loss);
  }
}

json augment_to_json(const AugmentConfig& a) {
  return {{"crop", a.crop},     {"pad", a.pad},           {"flip", a.flip},
          {"mixup", a.mixup},   {"mixup_alpha", a.mixup_alpha}, {"cutmix", a.cutmix},
          {"cutmix_alpha", a.cutmix_alpha}, {"value_threshold", a.value_threshold}, {"value_aware", a.value_aware}};
}

AugmentConfig augment_from_json(const json& j) {
  AugmentConfig a;
  a.crop = j.at("crop");
  a.pad = j.at("pad");
  a.flip = j.at("flip");
  a.mixup = j.at("mixup");
  a.mixup_alpha = j.at("mixup_alpha");
  a.cutmix = j.at("cutmix");
  a.cutmix_alpha = j.at("cutmix_alpha");
  a.value_threshold = j.at("value_threshold");
  a.value_aware = j.at("value_aware");
  return a;
}

}  // namespace

json TrainConfig::to_json() const {
  return {{"epochs", epochs},
          {"batch_size", batch_size},
          {"optimizer", {{"kind", optimizer.kind}, {"lr", optimizer.lr}, {"momentum", optimizer.momentum},
                         {"nesterov", optimizer.nesterov}, {"weight_decay", optimizer.weight_decay},
                         {"beta1", optimizer.beta1}, {"beta2", optimizer.beta2}, {"eps", optimizer.eps},
                         {"lr_scale", optimizer.lr_scale}}},
          {"schedule", {{"kind", schedule.kind}, {"step_size", schedule.step_size}, {"gamma", schedule.gamma},
                        {"warmup", schedule.warmup}, {"total", schedule.total}, {"min_lr", schedule.min_lr}}},
          {"clip_norm", clip_norm},
          {"label_smoothing", label_smoothing},
          {"seed", seed},
          {"augment", augment ? augment_to_json(*augment) : json(nullptr)}};
}

TrainConfig TrainConfig::from_json(const json& j) {
  TrainConfig c;
  c.epochs = j.at("epochs");
  c.batch_size = j.at("batch_size");
  const json& o = j.at("optimizer");
  c.optimizer = {o.at("kind"), o.at("lr"), o.at("momentum"), o.at("nesterov"), o.at("weight_decay"),
                 o.at("beta1"), o.at("beta2"), o.at("eps"), {}};
  if (o.contains("lr_scale")) c.optimizer.lr_scale = o["lr_scale"].get<std::map<std::string, float>>();
  const json& s = j.at("schedule");
  c.schedule = {s.at("kind"), s.at("step_size"), s.at("gamma"), s.at("warmup"), s.at("total"), s.at("min_lr")};
  c.clip_norm = j.at("clip_norm");
  c.label_smoothing = j.at("label_smoothing");
  c.seed = j.at("seed");
  if (j.contains("augment") && !j["augment"].is_null()) c.augment = augment_from_json(j["augment"]);
  return c;
}

json EpochStats::to_json() const {
  json j = {{"epoch", epoch}, {"train_loss", train_loss}, {"train_accuracy", train_accuracy},
            {"seconds", seconds}, {"samples_per_s", samples_per_s}, {"samples", samples}, {"lr", lr}};
  if (has_val) {
    j["val_loss"] = val_loss;
    j["val_accuracy"] = val_accuracy;
  }
  return j;
}

json EvalResult::to_json() const {
  json j = {{"count", count}, {"loss", loss}};
  if (!confusion.empty()) {
    j["accuracy"] = accuracy;
    j["per_class_accuracy"] = per_class_accuracy;
    j["confusion"] = confusion;
  } else {
    j["mae"] = mae;
  }
  return j;
}

EvalResult evaluate(Graph& model, const Dataset& data, int64_t batch_size) {
  check(batch_size >= 1, "batch size must be >= 1");
  Graph fused = fuse_conv_blocks(model);
  Executor ex(fused);
  ex.set_training(false);
  EvalResult r;
  r.count = data.size();
  const bool classify = data.task() == Task::classification;
  const int64_t k = data.num_outputs();
  if (classify) r.confusion.assign(k, std::vector<int64_t>(k, 0));
  Shape xs = data.sample_shape();
  xs.insert(xs.begin(), batch_size);
  Tensor xbuf = Tensor::empty(xs);
  Tensor ybuf = classify ? Tensor::empty({batch_size}, DType::i64) : Tensor::empty({batch_size, k});
  std::vector<int64_t> idx(batch_size);
  double loss_sum = 0.0, abs_sum = 0.0;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t n = std::min(batch_size, data.size() - start);
    std::iota(idx.begin(), idx.begin() + n, start);
    Tensor x = xbuf.slice0(0, n), y = ybuf.slice0(0, n);
    data.gather(idx.data(), n, x, y);
    const Tensor& out = ex.forward({x});
    check(out.rank() == 2 && out.dim(1) == k, "model output " + shape_str(out.shape()) + " does not match the data's " +
                                                  std::to_string(k) + " outputs");
    const float* o = out.data<float>();
    for (int64_t r0 = 0; r0 < n; ++r0) {
      const float* row = o + r0 * k;
      if (classify) {
        const int64_t label = y.data<int64_t>()[r0];
        loss_sum += -(row[label] - log_sum_exp(row, k));
        r.confusion[label][std::max_element(row, row + k) - row]++;
      } else {
        for (int64_t c = 0; c < k; ++c) {
          const double d = row[c] - y.data<float>()[r0 * k + c];
          loss_sum += d * d / k;
          abs_sum += std::abs(d) / k;
        }
      }
    }
  }
  r.loss = r.count ? loss_sum / r.count : 0.0;
  if (classify) {
    int64_t correct = 0;
    for (int64_t c = 0; c < k; ++c) {
      int64_t row_total = std::accumulate(r.confusion[c].begin(), r.confusion[c].end(), int64_t{0});
      correct += r.confusion[c][c];
      r.per_class_accuracy.push_back(row_total ? static_cast<double>(r.confusion[c][c]) / row_total : 0.0);
    }
    r.accuracy = r.count ? static_cast<double>(correct) / r.count : 0.0;
  } else {
    r.mae = r.count ? abs_sum / r.count : 0.0;
  }
  return r;
}

Trainer::Trainer(Graph& model, Task task, int64_t num_outputs, TrainConfig config)
    : model_(model), train_graph_(fuse_conv_blocks(model)), task_(task), config_(std::move(config)) {
  check(config_.epochs >= 1, "epochs must be >= 1");
  check(config_.batch_size >= 1, "batch size must be >= 1");
  validate_schedule(config_.schedule);
  const int logits = train_graph_.output();
  logits_id_ = logits;
  if (task == Task::classification) {
    // Per-sample loss weights are always an input (ones unless a sample
    // schedule rescales rows), so the graph does not depend on the schedule.
    if (config_.augment) {
      check(config_.label_smoothing == 0.0f, "label smoothing and augmentation with mixed labels cannot be combined");
      int targets = train_graph_.add_input("targets", {num_outputs});
      int weights = train_graph_.add_input("weights", {});
      train_graph_.set_output(train_graph_.add("soft_cross_entropy", {logits, targets, weights}));
    } else {
      int labels = train_graph_.add_input("labels", {}, DType::i64);
      int weights = train_graph_.add_input("weights", {});
      train_graph_.set_output(train_graph_.add("cross_entropy", {logits, labels, weights},
                                               {{"label_smoothing", config_.label_smoothing}}));
    }
    weights_ = Tensor::empty({config_.batch_size});
    if (config_.augment) soft_labels_ = Tensor::empty({config_.batch_size, num_outputs});
    losses_.resize(config_.batch_size);
    batch_values_.resize(config_.batch_size);
  } else {
    check(!config_.augment, "augmentation applies to classification only");
    int target = train_graph_.add_input("target", {num_outputs});
    train_graph_.set_output(train_graph_.add("mse", {logits, target}));
  }
  executor_ = std::make_unique<Executor>(train_graph_, config_.seed);
  executor_->set_training(true);
  for (auto& [name, p] : train_graph_.params())
    if (p.trainable) params_.push_back({name, p.value, executor_->grad(name)});
  optimizer_ = make_optimizer(config_.optimizer, params_);
}

Trainer::~Trainer() = default;

void Trainer::set_sample_schedule(std::shared_ptr<SampleSchedule> schedule) {
  check(task_ == Task::classification, "sample schedules (selection, dynamic pruning) apply to classification only");
  schedule_ = std::move(schedule);
}

EpochStats Trainer::train_epoch(std::shared_ptr<const Dataset> train) {
  check(train->size() > 0, "the training set is empty");
  if (!loader_ || loader_data_ != train.get()) {
    loader_ = std::make_unique<BatchLoader>(train, config_.batch_size, true, config_.seed);
    loader_data_ = train.get();
  }
  const bool classify = task_ == Task::classification;
  if (config_.augment) {
    check(train->sample_shape().size() == 3, "augmentation needs image data [channels, height, width], got samples " +
                                                 shape_str(train->sample_shape()));
    check(!config_.augment->value_aware || static_cast<int64_t>(row_values_.size()) == train->size(),
          "value-aware augmentation needs one value per training row (" + std::to_string(train->size()) + "), got " +
              std::to_string(row_values_.size()));
  }
  BatchLoader& loader = *loader_;
  std::vector<int64_t> rows = schedule_ ? schedule_->rows(epochs_done_, config_.epochs) : iota_indices(train->size());
  // A final batch of one sample would make batch-norm's batch variance
  // undefined; drop it (the next epoch's shuffle puts that sample elsewhere).
  const bool drop_last = rows.size() % static_cast<size_t>(config_.batch_size) == 1 && rows.size() > 1;
  loader.start_epoch(epochs_done_, std::move(rows), drop_last);
  // Augmentation draws depend on (seed, epoch) only, like the batch order.
  Rng augment_rng(config_.seed ^ (0xa5a5a5a5a5a5a5a5ull + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(epochs_done_)));
  const int64_t batches = loader.batches_per_epoch();
  const auto t0 = Clock::now();
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0, batch_index = 0;
  Batch batch;
  // The schedule advances by epoch progress, so an epoch with fewer batches
  // (a subset, or rows skipped by dynamic pruning) still covers one epoch's
  // share of it; with every row this is the step count.
  const int64_t per_epoch = config_.schedule.total > 0 ? config_.schedule.total / config_.epochs : 0;
  while (loader.next(batch)) {
    const int64_t position =
        per_epoch > 0 ? epochs_done_ * per_epoch + batch_index * per_epoch / std::max<int64_t>(batches, 1) : step_;
    optimizer_->set_lr(lr_at(config_.schedule, config_.optimizer.lr, position));
    if (before_step) before_step(position);
    const int64_t n = batch.size;
    const Tensor* loss_ptr = nullptr;
    if (classify) {
      Tensor w = weights_.slice0(0, n);
      float* wp = w.data<float>();
      for (int64_t i = 0; i < n; ++i) wp[i] = schedule_ ? schedule_->weight(batch.rows[i]) : 1.0f;
      Tensor targets = batch.y;
      if (config_.augment) {
        const float* values = nullptr;
        if (config_.augment->value_aware) {
          for (int64_t i = 0; i < n; ++i) batch_values_[i] = row_values_[batch.rows[i]];
          values = batch_values_.data();
        }
        targets = soft_labels_.slice0(0, n);
        augment_batch(*config_.augment, batch.x, batch.y.data<int64_t>(), values, targets.dim(1), targets,
                      augment_scratch_, augment_rng);
      }
      loss_ptr = &executor_->forward({batch.x, targets, w});
    } else {
      loss_ptr = &executor_->forward({batch.x, batch.y});
    }
    const float loss_value = loss_ptr->data<float>()[0];
    check(std::isfinite(loss_value), "training diverged: the loss became " + std::to_string(loss_value) +
                                         " at step " + std::to_string(step_) + "; lower the learning rate or clip gradients");
    executor_->backward();
    if (config_.clip_norm > 0.0) clip_grad_norm(params_, config_.clip_norm);
    optimizer_->step();
    ++step_;
    loss_sum += static_cast<double>(loss_value) * n;
    if (classify) {
      const Tensor& logits = executor_->value(logits_id_);
      correct += count_correct(logits, batch.y, n);
      if (schedule_ || on_batch) {
        per_sample_loss(logits, batch.y.data<int64_t>(), config_.augment ? soft_labels_.data<float>() : nullptr, n,
                        losses_.data());
        if (schedule_) schedule_->observe(batch.rows, n, losses_.data());
        if (on_batch) on_batch({epochs_done_, batch.rows, n, &logits, &batch.y, losses_.data()});
      }
    }
    seen += n;
    ++batch_index;
    if (on_step) {
      const double elapsed = seconds_since(t0);
      on_step({epochs_done_ + 1, batch_index, batches, loss_sum / seen, static_cast<double>(correct) / seen,
               seen / std::max(elapsed, 1e-9), elapsed});
    }
  }
  ++epochs_done_;
  samples_seen_ += seen;
  EpochStats s;
  s.epoch = epochs_done_;
  s.seconds = seconds_since(t0);
  s.samples = seen;
  s.samples_per_s = seen / std::max(s.seconds, 1e-9);
  s.train_loss = loss_sum / std::max<int64_t>(seen, 1);
  s.train_accuracy = static_cast<double>(correct) / std::max<int64_t>(seen, 1);
  s.lr = optimizer_->lr();
  return s;
}

std::map<std::string, Tensor> Trainer::state_tensors() const { return optimizer_->state(); }

json Trainer::state_json() const {
  return {{"epochs_done", epochs_done_}, {"step", step_}, {"samples_seen", samples_seen_},
          {"rng", executor_->rng().state()}, {"config", config_.to_json()}};
}

void Trainer::restore(const std::map<std::string, Tensor>& tensors, const json& state) {
  try {
    epochs_done_ = state.at("epochs_done");
    step_ = state.at("step");
    samples_seen_ = state.value("samples_seen", int64_t{0});
    executor_->rng().set_state(state.at("rng").get<std::array<uint64_t, 4>>());
    optimizer_->load_state(tensors);
  } catch (const json::exception& e) {
    throw Error(std::string("checkpoint training state is incomplete (") + e.what() + "); start without --resume");
  } catch (const std::out_of_range&) {
    throw Error("checkpoint optimizer state does not match this model and optimizer; start without --resume");
  }
}

}  // namespace leanai
