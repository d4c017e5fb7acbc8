// Max pooling on leanai's own kernel (kernels/maxpool_nhwc.h): u8/s8 NHWC
// bytes inside an int8 region, the layout oneDNN's int8 convolutions write,
// and f32 whole 2x2 windows at stride 2 in NHWC or 16-channel blocks, where
// oneDNN's pooling primitive costs more per call than the pooling itself.
#include "leanai/kernels/dnnl_context.h"
#include "leanai/kernels/maxpool_nhwc.h"
#include "leanai/runtime/lower_common.h"

namespace leanai::runtime {
namespace {

using namespace lower;

class MaxPoolStep : public OneToOneStep {
 public:
  MaxPoolShape shape{};
  PoolElement element = PoolElement::u8;

  void run() override { maxpool_nhwc(shape, element, src(), dst()); }
};

}  // namespace

namespace lower {

bool lower_maxpool_nhwc(LoweringContext& c, const Node& n, int x, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& pad, const Shape& y) {
  const Value& in = val(c, x);  // not to be read after new_value below, which may move it
  if (n.op != "maxpool2d" || in.shape.size() != 4) return false;
  const dt type = in.desc.data_type();
  const bool int8 = is_int8(in.desc);
  const int64_t batch = in.shape[0], channels = in.shape[1];
  const md nhwc(to_dims(in.shape), type, tag::nhwc);
  // The tag the output keeps and the channels one NHWC image holds (a
  // 16-channel block is an image of its own).
  tag layout;
  int64_t image_channels = channels;
  if (int8 && in.desc == nhwc) {
    layout = tag::nhwc;
  } else if (type == dt::f32 && kernel == std::vector<int64_t>{2, 2} && stride == std::vector<int64_t>{2, 2} &&
             pad == std::vector<int64_t>{0, 0}) {
    if (in.desc == nhwc) {
      layout = tag::nhwc;
    } else if (channels % 16 == 0 && in.desc == md(to_dims(in.shape), type, tag::nChw16c)) {
      layout = tag::nChw16c;
      image_channels = 16;
    } else {
      return false;
    }
  } else {
    return false;
  }
  const int64_t images = batch * (channels / image_channels);
  auto step = std::make_unique<MaxPoolStep>();
  step->shape = {images,    image_channels, in.shape[2], in.shape[3], y[2],   y[3],
                 kernel[0], kernel[1],      stride[0],   stride[1],   pad[0], pad[1]};
  step->element = type == dt::s8 ? PoolElement::s8 : type == dt::u8 ? PoolElement::u8 : PoolElement::f32;
  const QuantParams q = in.quant;
  const int out = new_value(c, y, md(to_dims(y), type, layout));
  val(c, out).quant = q;  // max commutes with rounding: int8 bytes keep their meaning
  step->reads = {x};
  step->writes = {out};
  step->info = {name_of(n), "pooling",
                std::string(int8 ? "leanai int8 max, " : "leanai max, ") + type_name(type) +
                    (layout == tag::nhwc ? ", nhwc" : ", nChw16c")};
  c.instance().steps.push_back(std::move(step));
  c.set_node_value(n.id, out);
  return true;
}

}  // namespace lower
}  // namespace leanai::runtime
