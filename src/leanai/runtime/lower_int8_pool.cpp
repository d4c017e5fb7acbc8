// Max pooling inside an int8 region on leanai's own kernel
// (kernels/int8_maxpool.h) for NHWC bytes, the layout oneDNN's int8
// convolutions write.
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/int8_maxpool.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

class Int8MaxPoolStep : public OneToOneStep {
 public:
  Int8PoolShape shape{};
  bool is_signed = false;

  void run() override { int8_maxpool_nhwc(shape, is_signed, src(), dst()); }
};

}  // namespace

bool lower_int8_maxpool(LoweringContext& c, const Node& n, int x, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& pad, const Shape& y) {
  const Value& in = val(c, x);
  const dt type = in.desc.data_type();
  if (n.op != "maxpool2d" || !is_int8(in.desc) || in.shape.size() != 4 || in.desc != md(to_dims(in.shape), type, tag::nhwc))
    return false;
  auto step = std::make_unique<Int8MaxPoolStep>();
  step->shape = {in.shape[0], in.shape[1], in.shape[2], in.shape[3], y[2], y[3],
                 kernel[0],   kernel[1],   stride[0],   stride[1],   pad[0], pad[1]};
  step->is_signed = type == dt::s8;
  const QuantParams q = in.quant;
  const int out = new_value(c, y, md(to_dims(y), type, tag::nhwc));
  val(c, out).quant = q;  // max commutes with rounding: the bytes keep their meaning
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "pooling", std::string("leanai int8 max, ") + type_name(type) + ", nhwc"};
  c.instance().steps.push_back(std::move(step));
  c.set_node_value(n.id, out);
  return true;
}

}  // namespace leanai::runtime
