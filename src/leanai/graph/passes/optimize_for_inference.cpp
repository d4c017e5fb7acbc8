#include "leanai/graph/passes/optimize_for_inference.h"

#include "leanai/graph/passes/compact_gates.h"
#include "leanai/graph/passes/fold_batchnorm.h"
#include "leanai/graph/passes/fold_constants.h"
#include "leanai/graph/passes/fuse_post_ops.h"
#include "leanai/graph/passes/remove_identities.h"

namespace leanai {

Graph optimize_for_inference(const Graph& graph) {
  return fuse_post_ops(fold_batchnorm(compact_gates(fold_constants(remove_identities(graph)))));
}

}  // namespace leanai
