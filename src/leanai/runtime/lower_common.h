// What the lowerings outside lowering.cpp share (internal to the runtime):
// values and steps made through the LoweringContext, the layer geometry, one
// oneDNN convolution / matmul primitive descriptor for any element types, and
// the entry points of leanai's own kernels' lowerings.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "leanai/kernels/f32_small_conv.h"
#include "leanai/runtime/kernel_choice.h"
#include "leanai/runtime/lower_quantized.h"

namespace leanai::runtime::lower {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

std::string name_of(const Node& n);
const Tensor& param(LoweringContext& c, int node);
bool is_param(LoweringContext& c, int node);
int new_value(LoweringContext& c, const Shape& shape, const md& desc, int root = -1);
Value& val(LoweringContext& c, int v);
PrimitiveStep& add_primitive(LoweringContext& c, dnnl::primitive p, const md& scratch, const std::string& name,
                             const std::string& kind, const std::string& detail);
const char* type_name(dt t);

// Whether every reader of `node`, looking through max pooling, flatten and
// reshape (which commute with rounding to a narrower type), is one `fits`
// accepts as reading it as input `i`; never past the graph output.
bool all_readers(const Graph& g, int node, const std::function<bool(const Node&, size_t)>& fits);

// For each position of a sample's stretch of memory in layout `desc`, the
// feature stored there plus one (0: padding). Empty when the samples of
// `shape` are not stored one whole stretch after another. Found by reordering
// numbered plain rows into the layout (in f32, whatever desc's element type),
// so it holds for any layout oneDNN has.
std::vector<int64_t> feature_at_position(const md& desc, const Shape& shape);
// A short name for such an order, to key weights packed in it by.
std::string feature_order_key(const std::vector<int64_t>& order);
// w [rows, cols] with its columns in such an order: column p of the result is
// w's column order[p] - 1, or zeros where order[p] is 0 (padding).
template <typename T>
std::vector<T> columns_in_order(const T* w, int64_t rows, int64_t cols, const std::vector<int64_t>& order) {
  const int64_t stretch = static_cast<int64_t>(order.size());
  std::vector<T> out(static_cast<size_t>(rows * stretch), T{0});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < stretch; ++p)
      if (order[p] > 0) out[r * stretch + p] = w[r * cols + order[p] - 1];
  return out;
}

// Shapes and oneDNN geometry of a linear / conv2d / q-op node.
struct Geometry {
  bool conv = false;
  Shape x, w, y;
  int64_t groups = 1;
  dnnl::memory::dims strides, dil, pad_l, pad_r, wdims;
};
Geometry geometry(const Node& n, const Shape& x, const Shape& w);
// The sizes, strides and padding of a conv with 2-D geometry geo, into a
// kernel spec with those fields (Int8SmallConvSpec, F32SmallConvSpec).
template <typename Spec>
void set_conv_geometry(Spec& s, const Geometry& geo) {
  s.in_c = geo.x[1], s.in_h = geo.x[2], s.in_w = geo.x[3];
  s.out_c = geo.w[0], s.kh = geo.w[2], s.kw = geo.w[3];
  s.stride_h = geo.strides[0], s.stride_w = geo.strides[1];
  s.pad_h = geo.pad_l[0], s.pad_w = geo.pad_l[1];
}
// The weights as stored ([out, in] or [out, in/g, kh, kw]) in element type t.
md plain_weights(const Geometry& geo, dt t);
md bias_desc(const Geometry& geo);

struct LayerPd {
  dnnl::primitive prim;
  md src, weights, dst, scratch;
  std::string impl;
};
// A oneDNN convolution (conv) or matmul (linear) with the given element types;
// layouts `any` where oneDNN may choose. `bias` empty: none.
LayerPd layer_pd(const Geometry& geo, dt src_t, dt w_t, const md& bias, dt dst_t, const dnnl::primitive_attr& attr);

std::string post_op_note(const Node& n);
dnnl::memory packed(LoweringContext& c, const Tensor& w, const md& plain, const md& want);
// The operands of the node's fused adds, as f32 values.
std::vector<int> add_operands(LoweringContext& c, const Node& n, size_t own);
// The layer's destination: a new value, or with a fused add the operand's
// storage (in place) or a copy of it. Call it before adding the layer's step:
// the copy must run first.
int layer_destination(LoweringContext& c, const Node& n, const std::vector<int>& adds, const md& dst, const Shape& y);
// Binds the layer's source and destination (from layer_destination).
void finish_layer(LoweringContext& c, const Node& n, PrimitiveStep& s, int x, int out, bool fused_add);

// A static qconv2d with 1-2 input channels, an f32 source and at most a ReLU,
// on leanai's own VNNI kernel (lower_small_conv.cpp); false where it does not
// apply or would not pay. out_q: the region's params, or f32 output.
bool lower_small_int8_conv(LoweringContext& c, const Node& n, const std::optional<QuantParams>& out_q);
// An f32 conv2d with 1-4 input channels read plain, whole 16-channel output
// blocks and at most a ReLU, for leanai's own kernel (lower_f32_small_conv.cpp):
// its spec (with the 2x2 max pool after it fused when that pool is its only
// reader), or none where the kernel does not apply; the candidates to time
// against oneDNN's, named by small_conv_name; and the step (writing
// nChw16c), which sets the node's value and a fused pool's.
std::optional<F32SmallConvSpec> f32_small_conv_spec(LoweringContext& c, const Node& n, int x);
std::vector<KernelCandidate> f32_small_conv_candidates(LoweringContext& c, const Node& n, int x,
                                                       const F32SmallConvSpec& spec);
std::string small_conv_name(const F32SmallConvSpec& spec);
// A run of leanai's pooling on scratch memory the size of the layer's
// unpooled output: what a candidate that does not fuse the pool leaves to do.
std::function<void()> separate_pool_run(const F32SmallConvSpec& spec, int64_t batch);
int lower_f32_small_conv(LoweringContext& c, const Node& n, int x, const F32SmallConvSpec& spec);
// maxpool2d on leanai's own kernel (lower_maxpool_nhwc.cpp): a u8/s8 NHWC
// value, or f32 2x2 windows at stride 2 in NHWC or nChw16c; false for any
// other, which oneDNN then pools.
bool lower_maxpool_nhwc(LoweringContext& c, const Node& n, int value, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& pad, const Shape& y);

}  // namespace leanai::runtime::lower
