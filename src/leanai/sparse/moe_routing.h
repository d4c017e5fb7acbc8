// Token routing for Mixture-of-Experts layers, as in DeepSeek-V3:
//
//   s = affinity(x @ router^T)       softmax over the experts, or a sigmoid per expert
//   chosen = top_k experts by s + bias   (the bias steers the choice only)
//   g = s of the chosen experts          (sigmoid: normalized to sum 1 over the chosen)
//
// MoeRouting holds one batch's routing and is sized once per batch shape, so
// routing a batch allocates nothing. Grouping the chosen (token, expert) pairs
// by expert lives in moe_grouping.h, load balancing in moe_balance.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leanai {

enum class Affinity { softmax, sigmoid };

// "softmax" or "sigmoid"; anything else throws Error.
Affinity parse_affinity(const std::string& name);

struct MoeRouting {
  int64_t tokens = 0, experts = 0, top_k = 0;
  std::vector<float> affinity;  // [tokens, experts]: the router logits, then s after apply_affinity
  std::vector<int32_t> expert;  // [tokens, top_k]: the chosen experts, best (by s + bias) first
  std::vector<float> gate;      // [tokens, top_k]: their gate weights g
  // Filled by group_by_expert (moe_grouping.h):
  std::vector<int64_t> chosen;  // [experts]: pairs that chose each expert (before capacity)
  std::vector<int64_t> begin;   // [experts + 1]: where each expert's rows start in `pair`
  std::vector<int64_t> kept;    // [experts]: rows begin[e] .. begin[e] + kept[e] are the expert's kept pairs
  std::vector<int32_t> pair;    // [tokens * top_k]: row -> pair (token * top_k + slot), grouped by expert
  std::vector<int32_t> row;     // [tokens * top_k]: pair -> its row, or -1 when capacity dropped it

  void resize(int64_t tokens, int64_t experts, int64_t top_k);
  int64_t pairs() const { return tokens * top_k; }
};

// Turns the logits in r.affinity into affinities s, row by row.
void apply_affinity(MoeRouting& r, Affinity affinity);

// Chooses each token's top_k experts by s + bias (ties: the lower expert index)
// and sets their gate weights. bias: [experts].
void choose_experts(MoeRouting& r, const float* bias, Affinity affinity);

// d(loss)/d(logits) [tokens, experts] from d(loss)/d(gate) [tokens, top_k]
// through the gate normalization and the affinity function. The choice
// itself is not differentiated: experts a token did not choose get only the
// softmax's coupling term (sigmoid: nothing).
void gate_backward(const MoeRouting& r, Affinity affinity, const float* dgate, float* dlogits);

}  // namespace leanai
