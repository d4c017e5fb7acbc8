// Trainer: fits a model Graph to a Dataset with an optimizer and a schedule.
// It wraps the model in a training graph (model + labels input + loss), so
// the loss is an op like any other and autograd reaches every parameter.
// Seeded and, with one thread, bit-for-bit repeatable; its state (epoch,
// step, optimizer moments, RNG) round-trips through a checkpoint.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "leanai/data/augment.h"
#include "leanai/data/dataset.h"
#include "leanai/graph/executor.h"
#include "leanai/nn/optimizer.h"
#include "leanai/nn/sample_schedule.h"
#include "leanai/nn/schedule.h"

namespace leanai {

class BatchLoader;

struct TrainConfig {
  int epochs = 5;
  int64_t batch_size = 128;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double clip_norm = 0.0;       // 0 = no clipping
  float label_smoothing = 0.0f;
  uint64_t seed = 0;
  // Augments every training batch (classification on images); with it the
  // loss takes label distributions, so MixUp and CutMix can mix labels.
  std::optional<AugmentConfig> augment;
  json to_json() const;
  static TrainConfig from_json(const json& j);
};

struct StepProgress {
  int epoch;               // 1-based
  int64_t batch, batches;  // batch is 1-based
  double loss, accuracy;   // running means over the epoch so far
  double samples_per_s;
  double elapsed_s;
};

struct EpochStats {
  int epoch = 0;
  double train_loss = 0, train_accuracy = 0;
  double val_loss = 0, val_accuracy = 0;
  bool has_val = false;
  double seconds = 0, samples_per_s = 0;
  int64_t samples = 0;  // sample-gradient steps this epoch (rows trained on)
  float lr = 0;
  json to_json() const;
};

struct EvalResult {
  int64_t count = 0;
  double loss = 0;
  double accuracy = 0;                              // classification
  std::vector<std::vector<int64_t>> confusion;      // [true][predicted]
  std::vector<double> per_class_accuracy;
  double mae = 0;                                   // regression
  json to_json() const;
};

// One training batch after its forward pass, for observers (forgetting
// events, per-sample statistics). Valid during the callback only.
struct BatchResult {
  int epoch;                // 0-based
  const int64_t* rows;      // training-set indices of the batch's rows
  int64_t size;
  const Tensor* logits;     // [size, classes]
  const Tensor* labels;     // [size] i64 class ids (before any mixing)
  const float* losses;      // per-sample training loss
};

// Runs the model (in eval mode) over a dataset.
EvalResult evaluate(Graph& model, const Dataset& data, int64_t batch_size = 1000);

class Trainer {
 public:
  Trainer(Graph& model, Task task, int64_t num_outputs, TrainConfig config);
  ~Trainer();

  // Trains one epoch on `train`; calls on_step after every batch.
  EpochStats train_epoch(std::shared_ptr<const Dataset> train);
  std::function<void(const StepProgress&)> on_step;
  std::function<void(const BatchResult&)> on_batch;  // classification only
  // Called before each training forward pass with the schedule step (the
  // position the learning-rate schedule reads), e.g. to ramp the sparsity of
  // gated layers (sparsity_schedule.h).
  std::function<void(int64_t step)> before_step;

  // Which rows of `train` each epoch visits and their loss weights; by
  // default every row with weight 1. Classification only.
  void set_sample_schedule(std::shared_ptr<SampleSchedule> schedule);
  SampleSchedule* sample_schedule() const { return schedule_.get(); }
  // One value per training row, for value-aware augmentation (augment.h).
  void set_row_values(std::vector<float> values) { row_values_ = std::move(values); }
  // Sample-gradient steps so far: rows trained on, summed over every step.
  int64_t samples_seen() const { return samples_seen_; }

  int epochs_done() const { return epochs_done_; }
  int64_t steps_done() const { return step_; }
  const TrainConfig& config() const { return config_; }
  Executor& executor() { return *executor_; }

  // Checkpoint state: tensors (optimizer moments) and JSON (counters, RNG, config).
  std::map<std::string, Tensor> state_tensors() const;
  json state_json() const;
  void restore(const std::map<std::string, Tensor>& tensors, const json& state);

 private:
  Graph& model_;
  Graph train_graph_;
  int logits_id_ = -1;  // the model's output inside train_graph_
  Task task_;
  TrainConfig config_;
  std::unique_ptr<Executor> executor_;
  std::vector<ParamRef> params_;
  std::unique_ptr<Optimizer> optimizer_;
  // Kept across epochs (its order depends only on seed and epoch), so epochs
  // after the first create no buffers.
  std::unique_ptr<BatchLoader> loader_;
  const Dataset* loader_data_ = nullptr;
  std::shared_ptr<SampleSchedule> schedule_;
  std::vector<float> row_values_;
  // Per-batch buffers, allocated once: loss weights, label distributions,
  // augmentation scratch, per-sample losses and values.
  Tensor weights_, soft_labels_, augment_scratch_;
  std::vector<float> losses_, batch_values_;
  int epochs_done_ = 0;
  int64_t step_ = 0;
  int64_t samples_seen_ = 0;
};

}  // namespace leanai
