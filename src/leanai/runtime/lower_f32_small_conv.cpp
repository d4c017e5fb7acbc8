// An f32 conv2d with a few input channels (a first layer) on leanai's own
// kernel (kernels/f32_small_conv.h): candidates beside oneDNN's (on one core,
// or below 8 samples with each sample's rows over the cores), kept where one
// measures faster. It reads the plain input and writes nChw16c, the layout
// oneDNN's blocked kernels and leanai's pooling read next. When the layer's
// only reader is a 2x2 max pool at stride 2, the pool is fused in; oneDNN's
// candidates are then timed with a separate pooling of their output size
// after them, so each side is charged the same work.
#include "leanai/core/threads.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/f32_small_conv.h"
#include "leanai/kernels/maxpool_nhwc.h"
#include "leanai/kernels/pool_geometry.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/kernels/weight_storage.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

class F32SmallConvStep : public OneToOneStep {
 public:
  std::shared_ptr<const F32SmallConv> conv;

  void run() override {
    conv->run(static_cast<const float*>(src()), src_shape()[0], static_cast<float*>(dst()));
  }
};

std::shared_ptr<const F32SmallConv> make_conv(LoweringContext& c, const Node& n, const F32SmallConvSpec& spec) {
  const float* bias = n.inputs.size() == 3 ? param(c, n.inputs[2]).data<float>() : nullptr;
  return std::make_shared<const F32SmallConv>(spec, param(c, n.inputs[1]).data<float>(), bias);
}

// The node reading n, when it is n's only reader and a 2x2 max pool at
// stride 2 without padding; else null.
const Node* pool_after(const Graph& g, const Node& n) {
  if (n.id == g.output()) return nullptr;
  const Node* reader = nullptr;
  for (const Node& m : g.nodes())
    for (int i : m.inputs)
      if (i == n.id) {
        if (reader) return nullptr;
        reader = &m;
      }
  if (!reader || reader->op != "maxpool2d") return nullptr;
  const PoolGeometry geo = PoolGeometry::from_attrs(reader->attrs, reader->op);
  const std::vector<int64_t> two = {2, 2}, none = {0, 0};
  return geo.kernel == two && geo.stride == two && geo.pad == none ? reader : nullptr;
}

}  // namespace

namespace lower {

std::optional<F32SmallConvSpec> f32_small_conv_spec(LoweringContext& c, const Node& n, int x) {
  if (n.op != "conv2d" || n.inputs.size() < 2 || n.inputs.size() > 3) return std::nullopt;  // no fused add
  // bf16 compute without native bf16 runs oneDNN on bf16-rounded f32 weights,
  // which this kernel would not see: it reads the stored ones.
  if (computes_in_bf16(n)) return std::nullopt;
  if (!is_param(c, n.inputs[1]) || (n.inputs.size() == 3 && !is_param(c, n.inputs[2]))) return std::nullopt;
  const std::vector<PostOp> ops = parse_post_ops(n);
  if (ops.size() > 1 || (ops.size() == 1 && ops[0].op != "relu")) return std::nullopt;
  const Value& in = val(c, x);
  const Tensor& w = param(c, n.inputs[1]);
  if (in.shape.size() != 4 || w.dtype() != DType::f32 || w.shape().size() != 4) return std::nullopt;
  if (in.desc != plain_desc(in.shape)) return std::nullopt;  // reads the plain input as it lies
  const Geometry geo = geometry(n, in.shape, w.shape());
  if (geo.groups != 1 || geo.dil[0] != 0 || geo.dil[1] != 0 || !f32_small_conv_fits(in.shape[1], w.dim(0)))
    return std::nullopt;
  F32SmallConvSpec spec;
  set_conv_geometry(spec, geo);
  spec.relu = ops.size() == 1;
  // Windows past the right / bottom edge would read beyond the padded rows.
  if (spec.out_h() != geo.y[2] || spec.out_w() != geo.y[3]) return std::nullopt;
  spec.pool = pool_after(c.graph(), n) != nullptr && spec.out_h() >= 2 && spec.out_w() >= 2;
  return spec;
}

std::vector<KernelCandidate> f32_small_conv_candidates(LoweringContext& c, const Node& n, int x,
                                                       const F32SmallConvSpec& spec) {
  const int64_t batch = val(c, x).shape[0];
  auto src = std::make_shared<std::vector<float>>(batch * spec.in_c * spec.in_h * spec.in_w, 0.0f);
  auto dst = std::make_shared<std::vector<float>>(batch * spec.out_c * spec.y_h() * spec.y_w(), 0.0f);
  std::vector<KernelCandidate> out;
  for (bool split : {false, true}) {
    if (split && (batch >= 8 || num_threads() == 1)) break;  // samples split over the threads already, or one thread
    F32SmallConvSpec s = spec;
    s.split_rows = split;
    auto conv = make_conv(c, n, s);
    out.push_back({small_conv_name(s), [=] { conv->run(src->data(), batch, dst->data()); }});
  }
  return out;
}

std::function<void()> separate_pool_run(const F32SmallConvSpec& spec, int64_t batch) {
  const MaxPoolShape shape{batch, spec.out_c, spec.out_h(), spec.out_w(), spec.y_h(), spec.y_w(), 2, 2, 2, 2, 0, 0};
  auto src = std::make_shared<std::vector<float>>(batch * spec.out_c * spec.out_h() * spec.out_w(), 0.0f);
  auto dst = std::make_shared<std::vector<float>>(batch * spec.out_c * spec.y_h() * spec.y_w(), 0.0f);
  return [=] { maxpool_nhwc(shape, PoolElement::f32, src->data(), dst->data()); };
}

std::string small_conv_name(const F32SmallConvSpec& spec) {
  return std::string("leanai small-channel") + (spec.pool ? " + pool" : "") +
         (spec.split_rows ? ", rows over threads" : "");
}

int lower_f32_small_conv(LoweringContext& c, const Node& n, int x, const F32SmallConvSpec& spec) {
  auto step = std::make_unique<F32SmallConvStep>();
  step->conv = make_conv(c, n, spec);
  c.count_weight_bytes(step->conv->packed_bytes());
  const Shape y = {val(c, x).shape[0], spec.out_c, spec.y_h(), spec.y_w()};
  const int out = new_value(c, y, md(to_dims(y), dt::f32, tag::nChw16c));
  const Node* pool = spec.pool ? pool_after(c.graph(), n) : nullptr;
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "conv2d",
                small_conv_name(spec) + " f32, nchw -> nChw16c" + post_op_note(n) +
                    (pool ? ", then " + name_of(*pool) + " (2x2 max, fused)" : "")};
  c.instance().steps.push_back(std::move(step));
  // With the pool fused, the conv node's value is the pooled one: its only
  // reader is that pool, which takes it as its own and is then skipped
  // (lowering.cpp skips a node that already has a value).
  c.set_node_value(n.id, out);
  if (pool) c.set_node_value(pool->id, out);
  return out;
}

}  // namespace lower
}  // namespace leanai::runtime
