// An f32 linear layer on a few rows (batch 1) through leanai's packed GEMM
// (kernels/packed_gemm.h), a third candidate beside oneDNN's inner product and
// matmul, kept where it measures faster. At batch 1 a layer is a
// matrix-vector product bound by streaming its weights; the packed kernel
// splits the output strips over the threads, each always the same ones, so
// each core streams its share from its own cache. Where waking the threads
// costs more than the split saves, the same kernel on one core wins the timing.
//
// A layer after a convolution reads its input in the convolution's blocked
// layout (nChw16c): each sample is still one stretch of memory, only with its
// features in another order. The weights' columns are packed in that order,
// so the kernel reads the stretch as it lies, with no reorder.
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/packed_gemm.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/runtime/lower_common.h"
#include "leanai/runtime/lower_packed_linear.h"

namespace leanai::runtime {
namespace {

using namespace lower;

// The layer as the kernel runs it: weights packed with their columns in the
// order a sample's features lie in memory (a stretch of `in` floats).
struct PackedLinear {
  Tensor panels, bias;  // bias undefined: none
  int64_t out = 0, in = 0;
  bool relu = false;
  bool one_core = false;  // never split over the threads

  void run(int64_t rows, const float* x, float* y) const {
    packed_gemm_by_panels(rows, x, in, {panels.data<float>(), out, in}, bias.defined() ? bias.data<float>() : nullptr,
                          relu, y, out, !one_core);
  }
};

class PackedLinearStep : public OneToOneStep {
 public:
  PackedLinear layer;
  std::string notes;  // what the step detail says after the form
  void run() override { layer.run(src_shape()[0], static_cast<const float*>(src()), static_cast<float*>(dst())); }
  bool can_split() const override { return packed_gemm_panels_can_split(layer.out, layer.in); }
  bool split() const override { return can_split() && !layer.one_core; }
  void set_split(bool split) override {
    layer.one_core = !split;
    info.detail = std::string(this->split() ? "leanai packed GEMM, output strips over the threads"
                                            : "leanai packed GEMM, on one core") +
                  notes;
  }
};

// Whether a sample's features lie in plain order, as w's columns do.
bool plain_order(const std::vector<int64_t>& order) {
  for (size_t p = 0; p < order.size(); ++p)
    if (order[p] != static_cast<int64_t>(p) + 1) return false;
  return true;
}

// w [out, in] packed with its columns in `order` (zero where order has padding).
Tensor pack_in_order(const Tensor& w, const std::vector<int64_t>& order) {
  const int64_t n = w.dim(0), k = w.dim(1), stretch = static_cast<int64_t>(order.size());
  if (stretch == k && plain_order(order)) return pack_gemm_stack(w.data<float>(), 1, n, k);
  return pack_gemm_stack(columns_in_order(w.data<float>(), n, k, order).data(), 1, n, stretch);
}

// Node n reading features in `order`, all but its packed weights.
PackedLinear unpacked_linear(LoweringContext& c, const Node& n, const std::vector<int64_t>& order) {
  const Tensor& w = param(c, n.inputs[1]);
  PackedLinear l;
  l.out = w.dim(0);
  l.in = static_cast<int64_t>(order.size());
  if (n.inputs.size() == 3) l.bias = param(c, n.inputs[2]);
  l.relu = !parse_post_ops(n).empty();
  return l;
}

}  // namespace

namespace lower {

std::vector<int64_t> packed_linear_order(LoweringContext& c, const Node& n, int x) {
  if (n.op != "linear" || !is_param(c, n.inputs[1])) return {};
  const std::vector<PostOp> ops = parse_post_ops(n);
  if (ops.size() > 1 || (ops.size() == 1 && ops[0].op != "relu")) return {};  // no residual add, ReLU at most
  if (n.inputs.size() == 3 && !is_param(c, n.inputs[2])) return {};
  const Tensor& w = param(c, n.inputs[1]);
  const Value& in = val(c, x);
  if (w.dtype() != DType::f32 || w.shape().size() != 2 || in.shape.empty()) return {};
  if (in.shape[0] > kPackedLinearMaxRows || shape_numel(in.shape) / in.shape[0] != w.dim(1)) return {};
  return feature_at_position(in.desc, in.shape);  // empty unless each sample is one stretch of memory
}

std::vector<KernelCandidate> packed_linear_candidates(LoweringContext& c, const Node& n, int x,
                                                     const std::vector<int64_t>& order) {
  // Packed on the first timed call, into a copy of its own: one that loses
  // (or is never timed, the choice being cached) leaves nothing behind.
  auto layer = std::make_shared<PackedLinear>(unpacked_linear(c, n, order));
  const int64_t rows = val(c, x).shape[0];
  auto src = std::make_shared<std::vector<float>>(rows * layer->in, 0.0f);
  auto dst = std::make_shared<std::vector<float>>(rows * layer->out, 0.0f);
  auto candidate = [=, w = param(c, n.inputs[1])](const char* name, bool one_core) {
    return KernelCandidate{name, [=] {
                             if (!layer->panels.defined()) layer->panels = pack_in_order(w, order);
                             layer->one_core = one_core;
                             layer->run(rows, src->data(), dst->data());
                           }};
  };
  std::vector<KernelCandidate> out = {candidate(kPackedSplit, false)};
  if (packed_gemm_panels_can_split(layer->out, layer->in)) out.push_back(candidate(kPackedOneCore, true));
  return out;
}

int lower_packed_linear(LoweringContext& c, const Node& n, int x, const std::vector<int64_t>& order, bool one_core) {
  auto step = std::make_unique<PackedLinearStep>();
  step->layer = unpacked_linear(c, n, order);
  step->layer.one_core = one_core;
  // One packed copy per layout, shared by every plan instance reading it.
  const Tensor& w = param(c, n.inputs[1]);
  step->layer.panels = c.weights().derived(w, pack_gemm_kind(1, w.dim(0), step->layer.in) + " columns " + feature_order_key(order),
                                           [&] { return pack_in_order(w, order); });
  const PackedLinear& l = step->layer;
  const bool reordered = !plain_order(order);
  c.count_weight_bytes(static_cast<int64_t>(l.panels.nbytes() + (l.bias.defined() ? l.bias.nbytes() : 0)));
  const Shape y = {val(c, x).shape[0], l.out};
  const int out = new_value(c, y, plain_desc(y));
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "linear", ""};
  step->notes = std::string(reordered ? ", reads 4-D in its layout" : "") + post_op_note(n);
  step->set_split(!one_core);
  c.instance().steps.push_back(std::move(step));
  return out;
}

}  // namespace lower
}  // namespace leanai::runtime
