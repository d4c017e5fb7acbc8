// Pass (inference): drops nodes that compute the identity at inference time
// (dropout), wiring their readers to their input. Safe because in inference
// mode dropout's kernel copies its input unchanged.
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph remove_identities(const Graph& graph);

}  // namespace leanai
