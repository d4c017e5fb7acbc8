// Load balancing for Mixture-of-Experts layers, as in DeepSeek-V3.
//
// Auxiliary-loss-free: after each training batch, every expert's routing bias
// moves by a fixed step against its load (overloaded experts go down), so the
// choice drifts toward uniform load without a loss term pulling on the gates.
//
// Optional sequence-wise balance loss over the batch (weight alpha):
//   L = alpha * E * sum_e f_e * P_e
//   f_e = (pairs choosing e) / (tokens * top_k),  P_e = mean over tokens of s'_e
// with s' the affinities normalized to sum 1 over all experts per token.
#pragma once
#include <cstdint>

#include "leanai/sparse/moe_routing.h"

namespace leanai {

// load[e] = fraction of the batch's tokens that chose expert e (before
// capacity), so the loads sum to top_k. Needs group_by_expert's r.chosen.
void expert_load(const MoeRouting& r, float* load);

// bias[e] += speed * sign(mean load - load[e]), from r.chosen (exact integer
// comparison, so a balanced expert's bias stays put).
void update_routing_bias(const MoeRouting& r, double speed, float* bias);

// The balance loss L (0 when alpha is 0). Needs r.chosen.
double balance_loss(const MoeRouting& r, Affinity affinity, double alpha);

// Adds dL/d(logits) [tokens, experts] into dlogits (f_e is a count: not differentiated).
void add_balance_loss_grad(const MoeRouting& r, Affinity affinity, double alpha, float* dlogits);

}  // namespace leanai
