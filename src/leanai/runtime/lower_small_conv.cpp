// A qconv2d with one or two input channels on leanai's own VNNI kernel
// (kernels/int8_small_conv.h) instead of oneDNN, where it does fewer
// multiply instructions; it quantizes its f32 input itself.
#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/int8_small_conv.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/input_quant.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

class SmallConvStep : public OneToOneStep {
 public:
  std::shared_ptr<const Int8SmallConv> conv;

  void run() override { conv->run(static_cast<const float*>(src()), src_shape()[0], dst()); }
};

bool cpu_runs_small_conv() {
  // The effective ISA honours DNNL_MAX_CPU_ISA, so a test can turn this path off with oneDNN's.
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto want = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_vnni);
  return (isa & want) == want && int8_small_conv_cpu_ok();
}

}  // namespace

namespace lower {

bool lower_small_int8_conv(LoweringContext& c, const Node& n, const std::optional<QuantParams>& out_q) {
  if (n.op != "qconv2d" || n.inputs.size() != 4) return false;
  const std::vector<PostOp> ops = parse_post_ops(n);
  if (ops.size() > 1 || (ops.size() == 1 && ops[0].op != "relu")) return false;
  const InputQuant iq = parse_input_quant(n);
  if (iq.dynamic || !is_param(c, n.inputs[1]) || !is_param(c, n.inputs[2]) || !is_param(c, n.inputs[3])) return false;
  const int x = c.node_value(n.inputs[0]);
  if (val(c, x).desc.data_type() != dt::f32) return false;  // inside a region: oneDNN reads the int8 value as it is
  const Shape xs = val(c, x).shape;
  const Tensor& wq = param(c, n.inputs[1]);
  if (xs.size() != 4 || wq.shape().size() != 4) return false;
  const Geometry geo = geometry(n, xs, wq.shape());
  if (geo.groups != 1 || geo.dil[0] != 0 || geo.dil[1] != 0) return false;
  if (!int8_small_conv_pays(xs[1], wq.dim(2), wq.dim(3)) || !cpu_runs_small_conv()) return false;

  Int8SmallConvSpec spec;
  set_conv_geometry(spec, geo);
  spec.input = iq.params;
  spec.output = out_q;
  spec.relu = ops.size() == 1;
  // Windows past the right / bottom edge would read beyond the padded rows.
  if (spec.out_h() != geo.y[2] || spec.out_w() != geo.y[3]) return false;

  const Tensor& ws = param(c, n.inputs[2]);
  const Tensor& b = param(c, n.inputs[3]);
  auto step = std::make_unique<SmallConvStep>();
  step->conv = std::make_shared<const Int8SmallConv>(spec, wq.data<int8_t>(), ws.data<float>(), b.data<float>());
  c.count_weight_bytes(step->conv->packed_bytes());

  const int src = c.as_layout(x, plain_desc(xs), name_of(n));
  const dt out_t = !out_q ? dt::f32 : out_q->dtype == DType::u8 ? dt::u8 : dt::s8;
  const int out = new_value(c, geo.y, md(to_dims(geo.y), out_t, tag::nhwc));
  if (out_q) val(c, out).quant = *out_q;
  step->reads = {src};
  step->writes = {out};
  step->info = {name_of(n), n.op,
                std::string("leanai small-channel int8 (avx512_vnni), f32 -> ") + type_name(out_t) +
                    (out_q ? " (requantized)" : "") + ", quantizes its input" + post_op_note(n)};
  c.instance().steps.push_back(std::move(step));
  c.set_node_value(n.id, out);
  return true;
}

}  // namespace lower
}  // namespace leanai::runtime
