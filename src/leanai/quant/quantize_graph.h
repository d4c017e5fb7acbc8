// Pass: rewrites chosen linear / conv2d layers of an inference graph (one that
// went through optimize_for_inference: batch-norm folded, post-ops fused) to
// the precision each is given, in the form quant/precision.h defines:
//
//   Graph q = quantize_graph(optimize_for_inference(g), {
//       {"conv1", {Precision::int8, false, params_for_range(-1.f, 3.f, DType::u8)}},
//       {"fc",    {Precision::bf16}}});
//
//   int8  -> qlinear / qconv2d: per-channel symmetric weights, the given static
//            input params (or dynamic per batch); with input_channel_mean the
//            bias absorbs the weights' rounding error on average (bias correction)
//   bf16  -> the same op with compute = "bf16" and a BF16-stored weight
//   fp16  -> the same op with an F16-stored weight, computing in f32 (exact on
//            every CPU; bf16 compute would round the fp16 weights a second time)
//   fp32  -> unchanged
//   int4  -> qlinear_w4 (linear layers whose input width is a multiple of int4_block):
//            block-wise weights with MSE-searched scales (quant/int4_blocks.h)
//
// A layer's name is its weight parameter's name without ".weight"; the
// rewritten layer keeps that parameter name, so names stay stable across
// passes. Safe: every rewritten layer computes the same function up to the
// rounding of its precision; other nodes are copied unchanged.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "leanai/graph/graph.h"
#include "leanai/graph/layer_name.h"
#include "leanai/quant/precision.h"
#include "leanai/quant/quant_params.h"

namespace leanai {

struct LayerQuant {
  Precision precision = Precision::fp32;
  bool dynamic = false;      // int8: input params computed per batch
  QuantParams input = {};    // int8 static: the input's params (dtype u8 or i8); dynamic: only dtype is read
  std::vector<float> input_channel_mean = {};  // optional, int8: E[x] per input feature / channel, for bias correction
  int int4_block = 32;
};

Graph quantize_graph(const Graph& g, const std::map<std::string, LayerQuant>& layers);

}  // namespace leanai
