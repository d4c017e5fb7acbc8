// Model presets and JSON specs.
//
// Presets (the reference models of ../shared/anchors plus one tuned for accuracy):
//   mlp     784-512-256-10 with ReLU
//   mlp-moe fc256 - MoE (16 experts 256-64-256, top 2, 1 shared) - fc10: 0.21 M active FLOPs
//   cnn     conv32-conv64-fc128-fc10 (3x3 convs, ReLU, 2x2 max-pool)
//   cnn-bn  conv32-BN-conv64-BN (padded, pooled) - fc256-BN-dropout - fc10
//   resnet  ResNet-8: conv16-BN stem, basic blocks of 16, 32 (stride 2), 64 (stride 2), global pool, fc
//
// A JSON spec is a list of layers applied in order:
//   {"layers": [{"type": "conv2d", "out": 16, "kernel": 3, "padding": 1},
//               {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
//               {"type": "flatten"}, {"type": "linear"}]}
// A final "linear" without "out" gets one output per class. {"type": "gate",
// "sparsity": 0.7} gates the previous layer's neurons (dynamic sparsity).
// A Mixture-of-Experts layer (width in = width out; see kernels/moe.cpp):
//   {"type": "moe", "experts": 16, "top_k": 2, "hidden": 32, "shared": 1, "affinity": "sigmoid"}
// with optional "bias_update_speed" (0.001), "balance_loss_weight" (0) and
// "capacity_factor" (0 = no limit).
#pragma once
#include <string>
#include <vector>

#include "leanai/graph/graph.h"

namespace leanai {

std::vector<std::string> preset_names();
bool is_preset(const std::string& name);
Graph build_preset(const std::string& name, const Shape& sample_shape, int64_t num_outputs, uint64_t seed);
Graph build_from_spec(const json& spec, const Shape& sample_shape, int64_t num_outputs, uint64_t seed);
// Reads and parses a spec file; errors name the file and the bad layer.
json read_spec_file(const std::string& path);

}  // namespace leanai
