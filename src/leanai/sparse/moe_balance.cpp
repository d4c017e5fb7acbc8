#include "leanai/sparse/moe_balance.h"

#include <cfloat>

#include "leanai/core/parallel.h"

namespace leanai {

void expert_load(const MoeRouting& r, float* load) {
  for (int64_t e = 0; e < r.experts; ++e)
    load[e] = r.tokens == 0 ? 0.0f : static_cast<float>(r.chosen[e]) / static_cast<float>(r.tokens);
}

void update_routing_bias(const MoeRouting& r, double speed, float* bias) {
  // mean load - load_e has the sign of tokens * top_k - experts * chosen_e.
  const int64_t total = r.pairs();
  for (int64_t e = 0; e < r.experts; ++e) {
    const int64_t diff = total - r.experts * r.chosen[e];
    bias[e] += static_cast<float>(speed) * static_cast<float>((diff > 0) - (diff < 0));
  }
}

namespace {

// Per-token normalized affinity s' = s / sum(s) (softmax rows already sum to 1).
inline float normalizer(const float* s, int64_t E, Affinity affinity) {
  if (affinity == Affinity::softmax) return 1.0f;
  float sum = 0.0f;
  for (int64_t e = 0; e < E; ++e) sum += s[e];
  return 1.0f / (sum > FLT_MIN ? sum : FLT_MIN);
}

}  // namespace

double balance_loss(const MoeRouting& r, Affinity affinity, double alpha) {
  if (alpha == 0.0 || r.tokens == 0) return 0.0;
  const int64_t E = r.experts;
  double loss = 0.0;
  for (int64_t t = 0; t < r.tokens; ++t) {
    const float* s = r.affinity.data() + t * E;
    const float inv = normalizer(s, E, affinity);
    for (int64_t e = 0; e < E; ++e) loss += static_cast<double>(r.chosen[e]) * s[e] * inv;
  }
  // sum_e f_e P_e = sum_e chosen_e / (N k) * sum_t s'_te / N
  return alpha * static_cast<double>(E) * loss / (static_cast<double>(r.pairs()) * static_cast<double>(r.tokens));
}

void add_balance_loss_grad(const MoeRouting& r, Affinity affinity, double alpha, float* dlogits) {
  if (alpha == 0.0 || r.tokens == 0) return;
  const int64_t E = r.experts;
  // dL/ds'_te = c_e = alpha * E * f_e / N, the same for every token.
  const double scale = alpha * static_cast<double>(E) / (static_cast<double>(r.pairs()) * static_cast<double>(r.tokens));
#pragma omp parallel for if (r.tokens * E > kParallelMinElements)
  for (int64_t t = 0; t < r.tokens; ++t) {
    const float* s = r.affinity.data() + t * E;
    float* dz = dlogits + t * E;
    const float inv = normalizer(s, E, affinity);
    // dot = sum_j s'_j c_j; softmax: dz_e = s_e (c_e - dot); sigmoid: ds_e = (c_e - dot) / sum(s), dz_e = ds_e s_e (1 - s_e).
    double dot = 0.0;
    for (int64_t e = 0; e < E; ++e) dot += s[e] * inv * scale * static_cast<double>(r.chosen[e]);
    for (int64_t e = 0; e < E; ++e) {
      const float d = static_cast<float>(scale * static_cast<double>(r.chosen[e]) - dot);
      dz[e] += affinity == Affinity::softmax ? s[e] * d : d * inv * s[e] * (1.0f - s[e]);
    }
  }
}

}  // namespace leanai
