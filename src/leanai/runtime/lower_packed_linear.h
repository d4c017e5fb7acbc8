// An f32 linear layer on a few rows through leanai's packed GEMM: a
// candidate the lowering times against oneDNN's (lower_packed_linear.cpp).
// LEANAI_LINEAR_KERNEL=packed|packed-one-core|inner_product|matmul skips the
// timing and takes that kernel where it applies (for tests and reproducible
// comparisons).
#pragma once
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime::lower {

// Batch 1 and small chunks: where the weights' streaming is the cost.
constexpr int64_t kPackedLinearMaxRows = 4;
// The candidates' names: outputs split over the threads, or all on one core.
constexpr const char* kPackedSplit = "packed";
constexpr const char* kPackedOneCore = "packed-one-core";

// Where the packed kernel can run linear node n on value x (f32 parameter
// weights, at most a ReLU fused, at most kPackedLinearMaxRows rows of x, each
// one stretch of memory: 2-D, or a 4-D flatten in NCHW, NHWC, nChw16c...),
// the feature order of x's layout (feature_at_position); elsewhere empty.
// Found once per layer and handed to the two calls below.
std::vector<int64_t> packed_linear_order(LoweringContext& c, const Node& n, int x);
// The kernel on zeroed rows of the layer's shapes, for timing: split over
// the threads, and on one core where a split would happen.
std::vector<KernelCandidate> packed_linear_candidates(LoweringContext& c, const Node& n, int x,
                                                     const std::vector<int64_t>& order);
// Adds the step; returns the output value ([rows, out], plain).
int lower_packed_linear(LoweringContext& c, const Node& n, int x, const std::vector<int64_t>& order, bool one_core);

}  // namespace leanai::runtime::lower
