#include "leanai/core/numeric.h"
#include "leanai/nn/trainer.h"

#include <chrono>
#include <cmath>
#include <numeric>

#include "leanai/core/error.h"
#include "leanai/data/batch_loader.h"
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

}  // namespace

json TrainConfig::to_json() const {
  return {{"epochs", epochs},
          {"batch_size", batch_size},
          {"optimizer", {{"kind", optimizer.kind}, {"lr", optimizer.lr}, {"momentum", optimizer.momentum},
                         {"nesterov", optimizer.nesterov}, {"weight_decay", optimizer.weight_decay},
                         {"beta1", optimizer.beta1}, {"beta2", optimizer.beta2}, {"eps", optimizer.eps}}},
          {"schedule", {{"kind", schedule.kind}, {"step_size", schedule.step_size}, {"gamma", schedule.gamma},
                        {"warmup", schedule.warmup}, {"total", schedule.total}, {"min_lr", schedule.min_lr}}},
          {"clip_norm", clip_norm},
          {"label_smoothing", label_smoothing},
          {"seed", seed}};
}

TrainConfig TrainConfig::from_json(const json& j) {
  TrainConfig c;
  c.epochs = j.at("epochs");
  c.batch_size = j.at("batch_size");
  const json& o = j.at("optimizer");
  c.optimizer = {o.at("kind"), o.at("lr"), o.at("momentum"), o.at("nesterov"), o.at("weight_decay"),
                 o.at("beta1"), o.at("beta2"), o.at("eps")};
  const json& s = j.at("schedule");
  c.schedule = {s.at("kind"), s.at("step_size"), s.at("gamma"), s.at("warmup"), s.at("total"), s.at("min_lr")};
  c.clip_norm = j.at("clip_norm");
  c.label_smoothing = j.at("label_smoothing");
  c.seed = j.at("seed");
  return c;
}

json EpochStats::to_json() const {
  json j = {{"epoch", epoch}, {"train_loss", train_loss}, {"train_accuracy", train_accuracy},
            {"seconds", seconds}, {"samples_per_s", samples_per_s}, {"lr", lr}};
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
    int labels = train_graph_.add_input("labels", {}, DType::i64);
    train_graph_.set_output(
        train_graph_.add("cross_entropy", {logits, labels}, {{"label_smoothing", config_.label_smoothing}}));
  } else {
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

EpochStats Trainer::train_epoch(std::shared_ptr<const Dataset> train) {
  check(train->size() > 0, "the training set is empty");
  if (!loader_ || loader_data_ != train.get()) {
    // A final batch of one sample would make batch-norm's batch variance
    // undefined; drop it (the next epoch's shuffle puts that sample elsewhere).
    const bool drop_last = train->size() % config_.batch_size == 1 && train->size() > 1;
    loader_ = std::make_unique<BatchLoader>(train, config_.batch_size, true, config_.seed, drop_last);
    loader_data_ = train.get();
  }
  BatchLoader& loader = *loader_;
  loader.start_epoch(epochs_done_);
  const int64_t batches = loader.batches_per_epoch();
  const auto t0 = Clock::now();
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0, batch_index = 0;
  Batch batch;
  while (loader.next(batch)) {
    optimizer_->set_lr(lr_at(config_.schedule, config_.optimizer.lr, step_));
    const Tensor& loss = executor_->forward({batch.x, batch.y});
    const float loss_value = loss.data<float>()[0];
    check(std::isfinite(loss_value), "training diverged: the loss became " + std::to_string(loss_value) +
                                         " at step " + std::to_string(step_) + "; lower the learning rate or clip gradients");
    executor_->backward();
    if (config_.clip_norm > 0.0) clip_grad_norm(params_, config_.clip_norm);
    optimizer_->step();
    ++step_;
    loss_sum += static_cast<double>(loss_value) * batch.size;
    if (task_ == Task::classification) correct += count_correct(executor_->value(logits_id_), batch.y, batch.size);
    seen += batch.size;
    ++batch_index;
    if (on_step) {
      const double elapsed = seconds_since(t0);
      on_step({epochs_done_ + 1, batch_index, batches, loss_sum / seen, static_cast<double>(correct) / seen,
               seen / std::max(elapsed, 1e-9), elapsed});
    }
  }
  ++epochs_done_;
  EpochStats s;
  s.epoch = epochs_done_;
  s.seconds = seconds_since(t0);
  s.samples_per_s = seen / std::max(s.seconds, 1e-9);
  s.train_loss = loss_sum / std::max<int64_t>(seen, 1);
  s.train_accuracy = static_cast<double>(correct) / std::max<int64_t>(seen, 1);
  s.lr = optimizer_->lr();
  return s;
}

std::map<std::string, Tensor> Trainer::state_tensors() const { return optimizer_->state(); }

json Trainer::state_json() const {
  return {{"epochs_done", epochs_done_}, {"step", step_}, {"rng", executor_->rng().state()}, {"config", config_.to_json()}};
}

void Trainer::restore(const std::map<std::string, Tensor>& tensors, const json& state) {
  try {
    epochs_done_ = state.at("epochs_done");
    step_ = state.at("step");
    executor_->rng().set_state(state.at("rng").get<std::array<uint64_t, 4>>());
    optimizer_->load_state(tensors);
  } catch (const json::exception& e) {
    throw Error(std::string("checkpoint training state is incomplete (") + e.what() + "); start without --resume");
  } catch (const std::out_of_range&) {
    throw Error("checkpoint optimizer state does not match this model and optimizer; start without --resume");
  }
}

}  // namespace leanai
