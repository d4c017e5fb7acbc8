// The rule that decides which neurons of a gated layer are on, shared by the
// neuron_gate kernel (every forward pass) and the compact_gates pass (once),
// so training and the compacted model switch off exactly the same channels.
//
// With sparsity s and C gates, k = floor(s * C) gates are off: the k smallest
// values, ties broken by lower index, so exactly k are off and C - k stay on
// (the quantile rule "mask = gates > quantile(gates, s)" made exact under ties).
#pragma once
#include <cstdint>
#include <vector>

namespace leanai {

// k = floor(s * C). The sparsity lives in an f32 buffer, where 0.7 reads back
// as 0.69999999, so the floor allows a relative 1e-6: 0.7 of 10 gates is 7.
// Throws Error unless 0 <= s < 1.
int64_t gates_off(double sparsity, int64_t channels);

// Writes mask[c] = 1 for channels that stay on and 0 for the `off` smallest
// gates. `order` is scratch; it is resized only when too small, so a caller
// that keeps it allocates nothing in steady state. Throws Error on a
// non-finite gate (a diverged model).
void gate_mask(const float* gates, int64_t channels, int64_t off, std::vector<int64_t>& order, float* mask);

// Which channels stay on, for passes and tests.
std::vector<bool> active_channels(const float* gates, int64_t channels, double sparsity);

}  // namespace leanai
