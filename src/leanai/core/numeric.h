// Small numeric helpers shared by kernels, evaluation and the CLI.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace leanai {

// log(sum(exp(x[i]))) over n contiguous values, shifted by the maximum so
// large logits do not overflow.
inline float log_sum_exp(const float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  return mx + static_cast<float>(std::log(sum));
}

}  // namespace leanai
