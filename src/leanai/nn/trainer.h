// Trainer: fits a model Graph to a Dataset with an optimizer and a schedule.
// It wraps the model in a training graph (model + labels input + loss), so
// the loss is an op like any other and autograd reaches every parameter.
// Seeded and, with one thread, bit-for-bit repeatable; its state (epoch,
// step, optimizer moments, RNG) round-trips through a checkpoint.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "leanai/data/dataset.h"
#include "leanai/graph/executor.h"
#include "leanai/nn/optimizer.h"
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

// Runs the model (in eval mode) over a dataset.
EvalResult evaluate(Graph& model, const Dataset& data, int64_t batch_size = 1000);

class Trainer {
 public:
  Trainer(Graph& model, Task task, int64_t num_outputs, TrainConfig config);
  ~Trainer();

  // Trains one epoch on `train`; calls on_step after every batch.
  EpochStats train_epoch(std::shared_ptr<const Dataset> train);
  std::function<void(const StepProgress&)> on_step;

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
  int epochs_done_ = 0;
  int64_t step_ = 0;
};

}  // namespace leanai
