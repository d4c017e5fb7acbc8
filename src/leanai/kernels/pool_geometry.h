// Pooling window geometry, shared by maxpool2d/avgpool2d and conv2d_fused's
// pool stage so both validate the same way and size outputs identically.
#pragma once
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {

struct PoolGeometry {
  std::vector<int64_t> kernel, stride, pad;

  // Reads kernel, stride (default: kernel) and padding from attrs; `what` names
  // the op in errors.
  static PoolGeometry from_attrs(const json& attrs, const std::string& what) {
    check(attrs.is_object(), what + ": pooling attributes must be an object");
    Node n;
    n.op = what;
    n.attrs = attrs;
    PoolGeometry g;
    g.kernel = attr_ints(n, "kernel", {2, 2});
    g.stride = attr_ints(n, "stride", g.kernel);
    g.pad = attr_ints(n, "padding", {0, 0});
    check(g.kernel.size() == 2 && g.stride.size() == 2 && g.pad.size() == 2,
          what + ": kernel, stride and padding take one or two integers");
    for (int i = 0; i < 2; ++i)
      check(g.kernel[i] >= 1 && g.kernel[i] <= (1 << 16) && g.stride[i] >= 1 && g.pad[i] >= 0 && g.pad[i] * 2 <= g.kernel[i],
            what + ": kernel and stride must be >= 1, padding between 0 and kernel/2");
    return g;
  }

  // Output [N, C, OH, OW] of pooling `x` [N, C, H, W] (floor mode, as PyTorch),
  // and the right/bottom padding oneDNN needs for it.
  Shape output(const Shape& x, dnnl::memory::dims& pad_r) const {
    Shape y = {x[0], x[1], 0, 0};
    pad_r.assign(2, 0);
    for (int i = 0; i < 2; ++i) {
      const int64_t span = x[2 + i] + 2 * pad[i] - kernel[i];
      check(span >= 0, "pooling window " + shape_str(kernel) + " is larger than the input " + shape_str(x));
      y[2 + i] = span / stride[i] + 1;
      pad_r[i] = (y[2 + i] - 1) * stride[i] + kernel[i] - x[2 + i] - pad[i];
    }
    return y;
  }
};

}  // namespace leanai
