// Pass: an op whose inputs are all parameters (constants at inference) is
// computed once, here, and replaced by a parameter holding its value: the
// reshapes, transposes and arithmetic an imported model applies to its
// weights then cost nothing per call. Safe because the same kernel computes
// the same value; only the time of computing it moves. Dropout and other ops
// that draw random numbers are never folded.
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph fold_constants(const Graph& graph);

}  // namespace leanai
