// Input-conditional dynamic sparsity: hidden linear layers become
// block_gated_linear layers (kernels/block_gated_linear.cpp), whose neurons
// form `blocks` blocks of which a small gate network picks top_k per input.
// Unlike gates that close the same neurons for every input, each input runs
// its own top_k / blocks of the layer.
//
//   Graph sparse = with_input_gates(build_preset("mlp", {784}, 10, seed), 0.7);
//   // mlp: fc1 (8 blocks of 64, top 2) -> relu -> fc2 (8 blocks of 32, top 2) -> relu -> fc3
#pragma once
#include <cstdint>

#include "leanai/graph/graph.h"

namespace leanai {

// Blocks each input keeps at a sparsity: round((1 - sparsity) * blocks), at
// least 1. Throws Error unless 0 <= sparsity < 1 and blocks >= 1.
int64_t input_gate_top_k(double sparsity, int64_t blocks);

// A copy of `model` where every hidden linear layer (a linear whose output
// reaches another linear or conv2d layer; never the output layer) becomes a
// block_gated_linear with the same weight and bias (a zero bias when it had
// none), `blocks` blocks and top_k = input_gate_top_k(sparsity, blocks). The
// new "<layer>.gate_weight" [blocks, in] starts at N(0, 1 / in), so the first
// routing already depends on the input. For the conv presets only their
// hidden linear layers are replaced: the convolutions stay dense.
//
// A layer is left dense when its input is not [N, D], it carries fused
// post-ops, its weight is not a parameter, or its width is not a multiple of
// `blocks`. Throws Error when no layer can be replaced. Parameters are shared
// with `model`, as passes do.
Graph with_input_gates(const Graph& model, double sparsity, int64_t blocks = 8, uint64_t seed = 0);

// Forward FLOPs per sample as if every block of every block_gated_linear ran
// (the dense layer, without the gate network): what the model costs without
// input gating. Equals the executor's flops_per_sample for other graphs.
double dense_flops_per_sample(const Graph& graph);

}  // namespace leanai
