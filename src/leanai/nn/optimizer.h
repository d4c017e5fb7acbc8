// Optimizers over named parameters: SGD (momentum, Nesterov, weight decay),
// Adam (L2 weight decay) and AdamW (decoupled weight decay), with PyTorch's
// update rules so results are comparable. Their state (moments, step count)
// is exposed as named tensors for checkpoints.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/tensor.h"

namespace leanai {

struct ParamRef {
  std::string name;
  Tensor value;
  Tensor grad;
  float lr_scale = 1.0f;  // this parameter learns at lr * lr_scale (set from OptimizerConfig::lr_scale)
};

struct OptimizerConfig {
  std::string kind = "adam";  // sgd | adam | adamw
  float lr = 1e-3f;
  float momentum = 0.0f;      // sgd
  bool nesterov = false;      // sgd
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam, adamw
  // Parameter groups with their own learning rate, as in PyTorch: a parameter
  // whose name ends with a key learns at lr times its value (the longest
  // matching key wins), e.g. {".log_alpha", 20} for L0 gates, which must
  // travel several units within a run while the weights move little.
  std::map<std::string, float> lr_scale;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one update with the current gradients.
  virtual void step() = 0;
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  // Named state tensors (checkpointing); load_state checks names and shapes.
  virtual std::map<std::string, Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& state) = 0;

 protected:
  float lr_ = 0.0f;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, std::vector<ParamRef> params);

// Scales all gradients so their joint L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(std::vector<ParamRef>& params, double max_norm);

}  // namespace leanai
