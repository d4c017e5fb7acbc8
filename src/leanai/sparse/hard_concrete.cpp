#include "leanai/sparse/hard_concrete.h"

#include <string>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {

HardConcrete HardConcrete::of(const Node& n) {
  HardConcrete hc;
  hc.beta = attr_float(n, "beta", hc.beta);
  hc.gamma = attr_float(n, "gamma", hc.gamma);
  hc.zeta = attr_float(n, "zeta", hc.zeta);
  check(hc.beta > 0.0 && hc.gamma < 0.0 && hc.zeta > 1.0,
        "node " + std::to_string(n.id) + " (" + n.op + "): needs beta > 0 and gamma < 0 < 1 < zeta, got beta " +
            std::to_string(hc.beta) + ", gamma " + std::to_string(hc.gamma) + ", zeta " + std::to_string(hc.zeta) +
            "; leave them out for Louizos et al.'s 2/3, -0.1, 1.1");
  return hc;
}

}  // namespace leanai
