// An f32 linear layer on a few rows (batch 1) through leanai's packed GEMM
// (kernels/packed_gemm.h), a third candidate beside oneDNN's inner product and
// matmul, kept where it measures faster. At batch 1 a layer is a
// matrix-vector product bound by streaming its weights; the packed kernel
// splits the output panels over the threads, each always the same ones, so
// each core streams its share from its own cache.
//
// A layer after a convolution reads its input in the convolution's blocked
// layout (nChw16c): each sample is still one stretch of memory, only with its
// features in another order. The weights' columns are packed in that order,
// so the kernel reads the stretch as it lies, with no reorder.
#include <functional>
#include <string_view>

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
  int64_t out_features = 0, in_features = 0;  // in: floats a sample takes in its layout (padding too)
  bool relu = false;

  void run() override {
    packed_gemm_by_panels(src_shape()[0], static_cast<const float*>(src()), in_features,
                          {panels.data<float>(), out_features, in_features},
                          bias.defined() ? bias.data<float>() : nullptr, relu, static_cast<float*>(dst()), out_features);
  }
};

// The layer's weights [out, in] packed with their columns in `order` (zero
// where order has padding), shared by every plan instance of that layout.
Tensor packed_panels(LoweringContext& c, const Tensor& w, const std::vector<int64_t>& order) {
  const int64_t n = w.dim(0), k = w.dim(1), stretch = static_cast<int64_t>(order.size());
  bool plain = stretch == k;
  for (int64_t p = 0; plain && p < stretch; ++p) plain = order[p] == p + 1;
  if (plain)
    return c.weights().derived(w, pack_gemm_kind(1, n, k), [&] { return pack_gemm_stack(w.data<float>(), 1, n, k); });
  const size_t layout = std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(order.data()), order.size() * sizeof(int64_t)));
  return c.weights().derived(w, pack_gemm_kind(1, n, stretch) + " columns " + std::to_string(layout), [&] {
    std::vector<float> columns(static_cast<size_t>(n * stretch), 0.0f);
    const float* src = w.data<float>();
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < stretch; ++p)
        if (order[p] > 0) columns[j * stretch + p] = src[j * k + order[p] - 1];
    return pack_gemm_stack(columns.data(), 1, n, stretch);
  });
}

Tensor packed_panels(LoweringContext& c, const Node& n, int x) {
  const Value& in = val(c, x);
  return packed_panels(c, param(c, n.inputs[1]), feature_at_position(in.desc, in.shape));
}

}  // namespace

namespace lower {

std::vector<int64_t> feature_at_position(const md& desc, const Shape& shape) {
  if (desc == plain_desc(shape)) {
    std::vector<int64_t> order(static_cast<size_t>(shape_numel(shape) / shape[0]));
    for (size_t f = 0; f < order.size(); ++f) order[f] = static_cast<int64_t>(f) + 1;
    return order;
  }
  const int64_t rows = shape[0], features = shape_numel(shape) / rows;
  if (desc.data_type() != dt::f32 || rows * features >= (int64_t{1} << 24)) return {};  // numbers exact in a float
  dnnl::memory plain(plain_desc(shape), cpu_engine()), laid(desc, cpu_engine());
  float* numbered = static_cast<float*>(plain.get_data_handle());
  for (int64_t i = 0; i < rows * features; ++i) numbered[i] = static_cast<float>(i + 1);
  float* out = static_cast<float*>(laid.get_data_handle());
  const int64_t total = static_cast<int64_t>(desc.get_size() / sizeof(float));
  std::fill_n(out, total, 0.0f);
  dnnl::reorder(plain, laid).execute(cpu_stream(), plain, laid);
  cpu_stream().wait();
  if (total % rows) return {};
  const int64_t stretch = total / rows;
  std::vector<int64_t> order(static_cast<size_t>(stretch));
  int64_t seen = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < stretch; ++p) {
      const int64_t v = static_cast<int64_t>(out[r * stretch + p]);
      const int64_t feature = v == 0 ? 0 : v - r * features;  // 1-based within sample r
      if (feature < 0 || feature > features) return {};       // another sample's feature
      if (r == 0) order[p] = feature, seen += feature > 0;
      else if (feature != order[p]) return {};
    }
  if (seen != features) return {};
  return order;
}

bool packed_linear_applies(LoweringContext& c, const Node& n, int x) {
  if (n.op != "linear" || !is_param(c, n.inputs[1])) return false;
  const std::vector<PostOp> ops = parse_post_ops(n);
  if (ops.size() > 1 || (ops.size() == 1 && ops[0].op != "relu")) return false;  // no residual add, ReLU at most
  if (n.inputs.size() == 3 && !is_param(c, n.inputs[2])) return false;
  const Tensor& w = param(c, n.inputs[1]);
  const Value& in = val(c, x);
  if (w.dtype() != DType::f32 || w.shape().size() != 2 || in.shape.empty()) return false;
  if (in.shape[0] > kPackedLinearMaxRows || shape_numel(in.shape) / in.shape[0] != w.dim(1)) return false;
  return !feature_at_position(in.desc, in.shape).empty();  // each sample one stretch of memory
}

KernelCandidate packed_linear_candidate(LoweringContext& c, const Node& n, int x) {
  const Tensor panels = packed_panels(c, n, x);
  const int64_t rows = val(c, x).shape[0], out = param(c, n.inputs[1]).dim(0);
  const int64_t in = panels.numel() / packed_gemm_floats(out, 1);  // the stretch a sample takes
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
  step->panels = packed_panels(c, n, x);
  step->out_features = w.dim(0);
  step->in_features = step->panels.numel() / packed_gemm_floats(w.dim(0), 1);
  const bool reordered = step->in_features != w.dim(1) || val(c, x).desc != plain_desc(val(c, x).shape);
  if (n.inputs.size() == 3) step->bias = param(c, n.inputs[2]);
  step->relu = !parse_post_ops(n).empty();
  c.count_weight_bytes(static_cast<int64_t>(step->panels.nbytes() + (step->bias.defined() ? step->bias.nbytes() : 0)));
  const Shape y = {val(c, x).shape[0], w.dim(0)};
  const int out = new_value(c, y, plain_desc(y));
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "linear",
                "leanai packed GEMM, output panels over the threads" +
                    std::string(reordered ? ", reads 4-D in its layout" : "") + post_op_note(n)};
  c.instance().steps.push_back(std::move(step));
  return out;
}

}  // namespace lower
}  // namespace leanai::runtime
