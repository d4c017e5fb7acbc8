// Lowering of the quantized forms of quant/precision.h to oneDNN, next to the
// float lowering (lowering.cpp), which calls in here. lower_quantized.cpp
// holds the int8 layers, lower_bf16.cpp the bf16 ones, lower_common.h what
// both share:
//
//   qlinear / qconv2d      oneDNN int8 matmul / convolution: u8 or s8 source
//                          with a runtime zero point, s8 weights packed once,
//                          per-channel output scales s * w_scale[o] (bias enters
//                          as b / scale: oneDNN adds it before scaling), post-ops.
//   int8 regions           when every reader (through max pooling, flatten and
//                          reshape) is a q-op with the same static input params,
//                          the layer writes u8/s8 directly (requantized by a final
//                          eltwise_linear post-op); a quantize (reorder with scale
//                          and zero point) only where a region begins and a
//                          dequantize only where it ends.
//   dynamic input          a step computes the batch's min/max and quantizes;
//                          matmul takes runtime output scales, convolution (which
//                          has no runtime scales in oneDNN 2.6) a binary_mul post-op.
//   compute = "bf16"       bf16 source and weights where the CPU has native bf16
//                          (elsewhere the caller lowers it in f32); the destination
//                          is bf16 when every reader (through pooling, flatten,
//                          reshape) is a bf16 layer, which would round it anyway.
//   region ends            the last layer writes f32 itself (its output scales
//                          dequantize); a separate dequantize step appears only
//                          for a reader that cannot take u8/s8/bf16 directly.
//
// CPUs without VNNI: oneDNN's u8 x s8 kernels then multiply through
// vpmaddubsw, whose 16-bit pair sums saturate for large u8 x s8 products
// (oneDNN's "int8 computation aspects" page); it recommends 7-bit weights, so
// there the Plan halves Wq (and doubles w_scale) for u8 sources. Results then
// differ from the reference by the weights' rounding, not by a wrapped sum.
#pragma once
#include <optional>
#include <string>

#include "leanai/runtime/plan_instance.h"

namespace leanai::runtime {

// What the quantized lowering needs from the float lowering.
class LoweringContext {
 public:
  virtual ~LoweringContext() = default;
  virtual const Graph& graph() const = 0;
  virtual Instance& instance() = 0;
  virtual PackedWeights& weights() = 0;
  virtual int node_value(int node) const = 0;  // as lowered: may be u8/s8
  virtual void set_node_value(int node, int value) = 0;
  virtual int as_layout(int value, const md& want, const std::string& name) = 0;
  // The destination of a layer with a fused residual add (an in-place sum).
  virtual int sum_destination(const Node& n, int operand, const md& dst) = 0;
  virtual void count_weight_bytes(int64_t bytes) = 0;
};

// qlinear / qconv2d; false when the node cannot be lowered (the caller then
// runs the Executor's kernel).
bool lower_quantized_layer(LoweringContext& c, const Node& n);
// linear / conv2d with compute = "bf16"; false where the CPU lacks native bf16.
bool lower_bf16_layer(LoweringContext& c, const Node& n);
// `value` as f32 (a dequantize step when it is u8/s8; one per value).
int dequantized(LoweringContext& c, int value, const std::string& name);
bool is_int8(const md& desc);

bool cpu_has_vnni();
bool cpu_has_bf16();

}  // namespace leanai::runtime
