// An f32 linear layer on a few rows (batch 1) through leanai's packed GEMM
// (kernels/packed_gemm.h), a third candidate beside oneDNN's inner product and
// matmul, kept where it measures faster. At batch 1 a layer is a
// matrix-vector product bound by streaming its weights; the packed kernel
// splits the output panels over the threads, each always the same ones, so
// each core streams its share from its own cache.
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/packed_gemm.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/runtime/lower_common.h"
#include "leanai/runtime/lower_packed_linear.h"

namespace leanai::runtime {
namespace {

using namespace lower;

class PackedLinearStep : public OneToOneStep {
 public:
  Tensor panels, bias;  // bias undefined: none
  int64_t out_features = 0, in_features = 0;
  bool relu = false;

  void run() override {
    packed_gemm_by_panels(src_shape()[0], static_cast<const float*>(src()), in_features,
                          {panels.data<float>(), out_features, in_features},
                          bias.defined() ? bias.data<float>() : nullptr, relu, static_cast<float*>(dst()), out_features);
  }
};

Tensor packed_panels(LoweringContext& c, const Tensor& w) {
  const int64_t n = w.dim(0), k = w.dim(1);
  return c.weights().derived(w, pack_gemm_kind(1, n, k), [&] { return pack_gemm_stack(w.data<float>(), 1, n, k); });
}

}  // namespace

namespace lower {

bool packed_linear_applies(LoweringContext& c, const Node& n, int x) {
  if (n.op != "linear" || !is_param(c, n.inputs[1])) return false;
  const std::vector<PostOp> ops = parse_post_ops(n);
  if (ops.size() > 1 || (ops.size() == 1 && ops[0].op != "relu")) return false;  // no residual add, ReLU at most
  if (n.inputs.size() == 3 && !is_param(c, n.inputs[2])) return false;
  const Tensor& w = param(c, n.inputs[1]);
  const Value& in = val(c, x);
  if (w.dtype() != DType::f32 || w.shape().size() != 2 || in.shape.empty()) return false;
  // Rows in plain order: a 2-D value, or a 4-D one (a flatten) stored as plain NCHW.
  if (in.desc != plain_desc(in.shape) || shape_numel(in.shape) / in.shape[0] != w.dim(1)) return false;
  return in.shape[0] <= kPackedLinearMaxRows;
}

KernelCandidate packed_linear_candidate(LoweringContext& c, const Node& n, int x) {
  const Tensor panels = packed_panels(c, param(c, n.inputs[1]));
  const int64_t rows = val(c, x).shape[0], out = param(c, n.inputs[1]).dim(0), in = param(c, n.inputs[1]).dim(1);
  auto src = std::make_shared<std::vector<float>>(rows * in, 0.0f);
  auto dst = std::make_shared<std::vector<float>>(rows * out, 0.0f);
  const bool relu = !parse_post_ops(n).empty();
  return {"packed", [=] {
            packed_gemm_by_panels(rows, src->data(), in, {panels.data<float>(), out, in}, nullptr, relu, dst->data(), out);
          }};
}

int lower_packed_linear(LoweringContext& c, const Node& n, int x) {
  const Tensor& w = param(c, n.inputs[1]);
  auto step = std::make_unique<PackedLinearStep>();
  step->panels = packed_panels(c, w);
  step->out_features = w.dim(0);
  step->in_features = w.dim(1);
  if (n.inputs.size() == 3) step->bias = param(c, n.inputs[2]);
  step->relu = !parse_post_ops(n).empty();
  c.count_weight_bytes(static_cast<int64_t>(step->panels.nbytes() + (step->bias.defined() ? step->bias.nbytes() : 0)));
  const Shape y = {val(c, x).shape[0], w.dim(0)};
  const int out = new_value(c, y, plain_desc(y));
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "linear", "leanai packed GEMM, output panels over the threads" + post_op_note(n)};
  c.instance().steps.push_back(std::move(step));
  return out;
}

}  // namespace lower
}  // namespace leanai::runtime
