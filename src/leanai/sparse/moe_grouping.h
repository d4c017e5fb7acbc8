// Groups a batch's (token, expert) pairs by expert with a counting sort, so
// each expert's tokens form one contiguous block of rows and the expert runs
// as one GEMM per layer. An expert capacity, when set, drops the overflow.
#pragma once
#include <cstdint>

#include "leanai/sparse/moe_routing.h"

namespace leanai {

// The most pairs one expert takes: ceil(capacity_factor * tokens * top_k / experts),
// or `tokens` (no limit: a token chooses an expert at most once) when the factor is 0.
int64_t expert_capacity(double capacity_factor, int64_t tokens, int64_t experts, int64_t top_k);

// Fills r.chosen, r.begin, r.kept, r.pair and r.row from r.expert: a histogram
// of expert ids, its prefix sums as offsets, then every pair placed in its
// expert's block in token order. An expert chosen by more than `capacity`
// pairs keeps the `capacity` with the highest affinity (ties: the earlier
// token); the rest lose that expert (row -1) and keep their other experts.
void group_by_expert(MoeRouting& r, int64_t capacity);

}  // namespace leanai
