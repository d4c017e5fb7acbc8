// Proportional quotas by largest remainder: share `fraction` of every group,
// rounded so the quotas sum to exactly round(fraction * total size). Used for
// class-stratified splits and class-balanced sample selection, so a part keeps
// the class mix of the whole.
#pragma once
#include <cstdint>
#include <vector>

namespace leanai {

// quota[g] is floor(sizes[g] * fraction) or one more; the groups with the
// largest remainders get the extra ones (ties to the lower group index).
// fraction must be in [0, 1].
std::vector<int64_t> largest_remainder_quotas(const std::vector<int64_t>& sizes, double fraction);

}  // namespace leanai
