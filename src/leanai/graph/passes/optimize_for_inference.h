// The inference pass pipeline the compiled runtime applies before lowering:
// remove_identities -> fold_constants -> compact_gates -> fold_batchnorm ->
// fuse_post_ops. compact_gates runs before the batch-norm folding and the
// fusions, while the patterns it recognizes are still separate nodes.
// Each pass keeps the model's outputs within 1e-5 relative of the input
// graph's (tests/test_inference_passes.cpp checks each alone and the whole).
#pragma once
#include "leanai/graph/graph.h"

namespace leanai {

Graph optimize_for_inference(const Graph& graph);

}  // namespace leanai
