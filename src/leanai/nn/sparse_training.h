// Dynamic-sparsity training as `leanai train --sparsity S --gates G` runs it:
// which gates go into the model, how the sparsity is reached during training,
// and what is recorded in the model file (so a checkpoint resumes the same way).
//
//   quantile  a neuron_gate after every hidden activation (with_gates); the
//             share of neurons switched off ramps (SparsitySchedule, cubic)
//             from 0 to S over ramp_steps, and is S in the saved model.
//   l0        an l0_gate after every hidden activation (with_l0_gates); the
//             same ramp sets the target share of closed gates (eval z == 0)
//             per layer, and L0Controller steers each layer's penalty weight
//             lambda (and keeps more than that share from closing) so the
//             closed share follows it. A gate travels about 4 units of
//             log_alpha from open (z = 0.9) to closed, the weights far less,
//             so log_alpha learns faster than the weights: at lr times
//             max(20, 16 / (lr * steps)), so that even a short run (`steps`
//             in all) lets gates close within a quarter of it; lambda's rate
//             is likewise max(0.02, 18 / steps), to grow 100-fold within a
//             quarter of the run. The saved model has at most S closed per
//             layer, S when training was long enough for the gates to get
//             there (a few hundred steps).
//   input     every hidden linear layer becomes block_gated_linear
//             (with_input_gates, 8 blocks, top_k = round((1 - S) * 8)); the
//             sparsity is structural from the first step, so there is no ramp.
//
//   SparseTraining sparse{"l0", 0.7, ramp_steps};
//   Graph model = sparse.gate(dense, seed);
//   sparse.configure(config);             // before the Trainer: sets lr_scale
//   json record = sparse.to_json();       // into the model file, for resuming
//   Trainer trainer(model, task, outputs, config);
//   trainer.before_step = [&](int64_t step) { sparse.before_step(model, step); };
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <utility>

#include "leanai/graph/graph.h"
#include "leanai/nn/l0_controller.h"
#include "leanai/nn/trainer.h"

namespace leanai {

constexpr float kL0GateLrScale = 20.0f;  // log_alpha learns at least this many times faster than the weights
constexpr int64_t kInputGateBlocks = 8;

struct SparseTraining {
  std::string gates = "quantile";  // quantile | l0 | input
  double target = 0.0;             // S, in [0, 1)
  int64_t ramp_steps = 0;          // quantile and l0
  std::set<std::string> dense_layers;  // quantile and l0: hidden layers left ungated (e.g. a CNN's stem)

  SparseTraining() = default;
  SparseTraining(std::string gates_kind, double target_sparsity, int64_t ramp)
      : gates(std::move(gates_kind)), target(target_sparsity), ramp_steps(ramp) {}

  // {"target", "gates", "ramp_steps"} (+ "dense_layers" when some,
  // "controller_rate" for l0, "blocks" and "top_k" for input).
  json to_json() const;
  // Reads to_json's record; a record without "gates" is quantile (older files).
  static SparseTraining from_json(const json& j);

  // `model` with this kind of gates, dense at the start. Throws Error for an
  // unknown kind, a target outside [0, 1), or dense_layers that are not
  // hidden layers of `model` (or given with input gates).
  Graph gate(const Graph& model, uint64_t seed) const;
  // l0: from the run's length (config.schedule.total steps, or ramp_steps
  // when that is 0) and learning rate, how fast log_alpha learns
  // (config.optimizer.lr_scale) and how fast lambda moves.
  void configure(TrainConfig& config);
  // Before every training step: the quantile sparsity or the l0 target at `step`.
  void before_step(Graph& model, int64_t step);
  // After training: quantile gates run at the final target; l0 gates get the
  // controller's projection once more (at most the target share closed).
  void finish(Graph& model);
  // What the model reached: the share of neurons off (quantile, l0: eval
  // z == 0) per gated layer and overall, or the blocks each input runs.
  json achieved(const Graph& model) const;

 private:
  L0Controller controller_;
};

}  // namespace leanai
