#include "leanai/sparse/moe_routing.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"

namespace leanai {

Affinity parse_affinity(const std::string& name) {
  if (name == "softmax") return Affinity::softmax;
  if (name == "sigmoid") return Affinity::sigmoid;
  throw Error("moe: unknown affinity '" + name + "'; use \"softmax\" or \"sigmoid\"");
}

void MoeRouting::resize(int64_t n, int64_t e, int64_t k) {
  check(n * k < INT32_MAX, "moe: batch too large (tokens x top_k must stay below 2^31); use smaller batches");
  tokens = n;
  experts = e;
  top_k = k;
  affinity.resize(n * e);
  expert.resize(n * k);
  gate.resize(n * k);
  chosen.resize(e);
  begin.resize(e + 1);
  kept.resize(e);
  pair.resize(n * k);
  row.resize(n * k);
}

void apply_affinity(MoeRouting& r, Affinity affinity) {
  const int64_t E = r.experts;
  float* s = r.affinity.data();
#pragma omp parallel for if (r.tokens * E > kParallelMinElements)
  for (int64_t t = 0; t < r.tokens; ++t) {
    float* st = s + t * E;
    if (affinity == Affinity::sigmoid) {
      for (int64_t e = 0; e < E; ++e) st[e] = 1.0f / (1.0f + std::exp(-st[e]));
      continue;
    }
    const float mx = *std::max_element(st, st + E);
    float sum = 0.0f;
    for (int64_t e = 0; e < E; ++e) sum += st[e] = std::exp(st[e] - mx);
    for (int64_t e = 0; e < E; ++e) st[e] /= sum;
  }
}

void choose_experts(MoeRouting& r, const float* bias, Affinity affinity) {
  const int64_t E = r.experts, k = r.top_k;
#pragma omp parallel for if (r.tokens * E * k > kParallelMinElements)
  for (int64_t t = 0; t < r.tokens; ++t) {
    const float* s = r.affinity.data() + t * E;
    int32_t* ex = r.expert.data() + t * k;
    float* score = r.gate.data() + t * k;  // holds s + bias while choosing
    // Insertion into a sorted list of k: k is small, and ties keep the lower index.
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e) {
      const float v = s[e] + bias[e];
      if (n == k && !(v > score[k - 1])) continue;
      int64_t i = n < k ? n++ : k - 1;
      for (; i > 0 && v > score[i - 1]; --i) {
        score[i] = score[i - 1];
        ex[i] = ex[i - 1];
      }
      score[i] = v;
      ex[i] = static_cast<int32_t>(e);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += score[j] = s[ex[j]];
    if (affinity == Affinity::sigmoid) {
      // Divided, not multiplied by 1 / sum: one chosen expert then gets exactly 1.
      sum = std::max(sum, FLT_MIN);
      for (int64_t j = 0; j < k; ++j) score[j] /= sum;
    }
  }
}

void gate_backward(const MoeRouting& r, Affinity affinity, const float* dgate, float* dlogits) {
  const int64_t E = r.experts, k = r.top_k;
#pragma omp parallel for if (r.tokens * E > kParallelMinElements)
  for (int64_t t = 0; t < r.tokens; ++t) {
    const float* s = r.affinity.data() + t * E;
    const int32_t* ex = r.expert.data() + t * k;
    const float* g = r.gate.data() + t * k;
    const float* dg = dgate + t * k;
    float* dz = dlogits + t * E;
    if (affinity == Affinity::softmax) {
      // g_j = s_ej, so ds is dg on the chosen and 0 elsewhere; then the softmax Jacobian.
      float dot = 0.0f;
      for (int64_t j = 0; j < k; ++j) dot += s[ex[j]] * dg[j];
      for (int64_t e = 0; e < E; ++e) dz[e] = -s[e] * dot;
      for (int64_t j = 0; j < k; ++j) dz[ex[j]] += s[ex[j]] * dg[j];
      continue;
    }
    // g_j = s_ej / S with S = sum of the chosen s: ds_ej = (dg_j - sum_i dg_i g_i) / S.
    float sum = 0.0f, dot = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      sum += s[ex[j]];
      dot += dg[j] * g[j];
    }
    const float inv = 1.0f / std::max(sum, FLT_MIN);
    for (int64_t e = 0; e < E; ++e) dz[e] = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const float se = s[ex[j]];
      dz[ex[j]] = (dg[j] - dot) * inv * se * (1.0f - se);
    }
  }
}

}  // namespace leanai
