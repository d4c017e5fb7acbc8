// channel_dot: out[c] = sum over n (and the inner h*w positions) of g * x for
// an [N, C, inner] layout, each channel summed in a fixed order (by n, then
// position), so the result does not depend on the thread count. The
// gradient of a per-channel gate or scale (neuron_gate, l0_gate).
#pragma once
#include <cstdint>

#include "leanai/core/parallel.h"

namespace leanai {

inline void channel_dot(const float* __restrict x, const float* __restrict g, float* __restrict out, int64_t batch,
                        int64_t channels, int64_t inner) {
  if (inner == 1) {
    for (int64_t c = 0; c < channels; ++c) out[c] = 0.0f;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < channels; ++c) out[c] += g[n * channels + c] * x[n * channels + c];
    return;
  }
#pragma omp parallel for if (batch * channels * inner > kParallelMinElements)
  for (int64_t c = 0; c < channels; ++c) {
    double acc = 0.0;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t at = (n * channels + c) * inner;
      float plane = 0.0f;
      for (int64_t i = 0; i < inner; ++i) plane += g[at + i] * x[at + i];
      acc += plane;
    }
    out[c] = static_cast<float>(acc);
  }
}

}  // namespace leanai
