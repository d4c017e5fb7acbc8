// ModelBuilder: builds a sequential Graph layer by layer, tracking the sample
// shape and initializing weights as PyTorch does (uniform in +-1/sqrt(fan_in)),
// so a leanai model and its PyTorch twin start from the same distribution.
#pragma once
#include <map>
#include <string>

#include "leanai/core/rng.h"
#include "leanai/graph/graph.h"

namespace leanai {

// The less common knobs of a Mixture-of-Experts layer (see kernels/moe.cpp).
struct MoeOptions {
  double bias_update_speed = 0.001;  // auxiliary-loss-free balancing step (0: off)
  double balance_loss_weight = 0.0;  // alpha of the sequence-wise balance loss (0: off)
  double capacity_factor = 0.0;      // 0: no expert capacity limit
};

class ModelBuilder {
 public:
  ModelBuilder(const Shape& sample_shape, uint64_t seed);

  ModelBuilder& linear(int64_t out, bool bias = true);
  ModelBuilder& conv2d(int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
                       int64_t dilation = 1, int64_t groups = 1, bool bias = true);
  ModelBuilder& batchnorm(double eps = 1e-5, double momentum = 0.1);
  ModelBuilder& layernorm(double eps = 1e-5);
  ModelBuilder& activation(const std::string& op);  // relu, gelu, sigmoid, tanh, leaky_relu
  ModelBuilder& maxpool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  ModelBuilder& avgpool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  ModelBuilder& global_avgpool();
  ModelBuilder& flatten();
  ModelBuilder& dropout(double p);
  ModelBuilder& softmax();
  // A neuron_gate over the current layer's channels (dynamic sparsity: the
  // floor(sparsity * C) channels with the smallest learned gates are off).
  ModelBuilder& gate(double sparsity);
  // DeepSeekMoE layer on a flat input of width D, output width D: `experts`
  // routed experts (D -> hidden -> D, ReLU), top_k of them per sample, plus
  // `shared` always-on experts of the same width; affinity "sigmoid" or
  // "softmax". No residual is added.
  ModelBuilder& moe(int64_t experts, int64_t top_k, int64_t hidden, int64_t shared = 0,
                    const std::string& affinity = "sigmoid", const MoeOptions& options = {});

  // A ResNet basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN plus a shortcut
  // (identity, or conv1x1(stride)-BN when the shape changes), added, then ReLU.
  ModelBuilder& residual_block(int64_t out_channels, int64_t stride = 1);

  const Shape& shape() const { return shape_; }  // current sample shape
  Graph finish();

 private:
  std::string next_name(const std::string& kind);
  int add_uniform_param(const std::string& name, const Shape& shape, float bound);
  void append(const std::string& op, std::vector<int> inputs, json attrs);

  Graph graph_;
  Rng rng_;
  Shape shape_;
  int current_;
  std::map<std::string, int> count_per_kind_;
};

}  // namespace leanai
