// linear / conv2d with compute = "bf16" on oneDNN bf16 (see lower_quantized.h).
#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/weight_storage.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

// Whether a bf16 layer's output may be stored as bf16 (a bf16 region): its
// readers all round their source to bf16 anyway.
bool bf16_region(const Graph& g, int node) {
  return all_readers(g, node, [&](const Node& m, size_t i) {
    return (m.op == "linear" || m.op == "conv2d") && i == 0 && computes_in_bf16(m) && g.node(m.inputs[1]).op == "param";
  });
}

}  // namespace

bool lower_bf16_layer(LoweringContext& c, const Node& n) {
  if (!cpu_has_bf16()) return false;
  const std::vector<PostOp> ops = parse_post_ops(n);
  const size_t own = n.inputs.size() - count_add_post_ops(ops);
  if (!is_param(c, n.inputs[1]) || (own == 3 && !is_param(c, n.inputs[2]))) return false;
  int x = c.node_value(n.inputs[0]);  // bf16 inside a bf16 region
  if (val(c, x).desc.data_type() != dt::bf16) x = dequantized(c, x, name_of(n));
  const Shape xs = val(c, x).shape;
  if (n.op == "linear" && xs.size() != 2) return false;
  const Tensor& w0 = param(c, n.inputs[1]);
  const Tensor w = w0.dtype() == DType::bf16 ? w0 : c.weights().derived(w0, "bf16", [&] { return w0.to(DType::bf16); });
  const Geometry geo = geometry(n, xs, w.shape());
  const std::vector<int> adds = add_operands(c, n, own);
  std::vector<md> add_descs;
  for (int v : adds) add_descs.push_back(val(c, v).desc);
  dnnl::primitive_attr attr;
  attr.set_post_ops(to_dnnl_post_ops(ops, add_descs, 0));
  // bf16 out when every reader rounds to bf16 anyway (not with a fused add: sum reads the f32 operand).
  const bool bf16_out = adds.empty() && bf16_region(c.graph(), n.id);
  const LayerPd pd = layer_pd(geo, dt::bf16, dt::bf16, own == 3 ? bias_desc(geo) : md(), bf16_out ? dt::bf16 : dt::f32, attr);
  x = c.as_layout(x, pd.src, name_of(n));  // where x is f32, the rounding to bf16 happens in this reorder
  const int out = layer_destination(c, n, adds, pd.dst, geo.y);
  auto& s = add_primitive(c, pd.prim, pd.scratch, name_of(n), n.op,
                          pd.impl + (bf16_out ? ", bf16 -> bf16" : ", bf16 -> f32") + post_op_note(n));
  s.args[DNNL_ARG_WEIGHTS] = packed(c, w, plain_weights(geo, dt::bf16), pd.weights);
  if (own == 3) {
    const Tensor& b = param(c, n.inputs[2]);
    s.args[DNNL_ARG_BIAS] = wrap(bias_desc(geo), b);
    c.count_weight_bytes(static_cast<int64_t>(b.nbytes()));
  }
  finish_layer(c, n, s, x, out, !adds.empty());
  return true;
}

}  // namespace leanai::runtime
