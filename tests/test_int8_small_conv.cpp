// leanai's small-channel int8 convolution (kernels/int8_small_conv.h) against
// the reference qconv2d kernel: every geometry the dot packing has edge cases
// for (kernel widths past 4, strides, padding, a channel count not a multiple
// of 16, column counts not a multiple of 4), both input types, and f32, u8 and
// s8 outputs with and without ReLU.
#include <gtest/gtest.h>

#include <cmath>

#include "graph_fixtures.h"
#include "leanai/core/rng.h"
#include "leanai/kernels/int8_small_conv.h"
#include "leanai/quant/input_quant.h"
#include "quant_fixtures.h"

namespace leanai {
namespace {

using namespace test_support;

struct SmallConvCase {
  std::string name;
  int64_t in_c, h, w, out_c, kh, kw, stride, pad;
  DType in_type;
  std::optional<DType> out_type;  // none: f32
  bool relu;
};

Tensor random_i8(const Shape& s, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s, DType::i8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int8_t>()[i] = static_cast<int8_t>(std::lround(rng.uniform() * 254.0 - 127.0));
  return t;
}

// The reference qconv2d (plain loops, exact int32 sums) as NCHW f32, ReLU applied.
Tensor reference(const SmallConvCase& c, const Tensor& x, const Tensor& wq, const Tensor& ws, const Tensor& b,
                 const QuantParams& in) {
  Graph g;
  const int xi = g.add_input("x", {c.in_c, c.h, c.w});
  const int wi = g.add_param("l.weight", wq, false), si = g.add_param("l.w_scale", ws, false), bi = g.add_param("l.bias", b, false);
  json attrs = {{"stride", {c.stride, c.stride}}, {"padding", {c.pad, c.pad}}, {"input", input_quant_attr(in)}};
  g.set_output(g.add("qconv2d", {xi, wi, si, bi}, attrs, "l"));
  Tensor y = run_graph(g, x);
  if (c.relu)
    for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = std::max(y.data<float>()[i], 0.0f);
  return y;
}

class SmallConv : public ::testing::TestWithParam<SmallConvCase> {};

TEST_P(SmallConv, EqualsTheReferenceKernel) {
  if (!int8_small_conv_cpu_ok()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI; the Plan uses oneDNN instead";
  const SmallConvCase c = GetParam();
  const int64_t n = 3;
  Tensor x = random_tensor({n, c.in_c, c.h, c.w}, 21);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 0.4f;  // asymmetric: a u8 zero point that matters
  const Tensor wq = random_i8({c.out_c, c.in_c, c.kh, c.kw}, 22);
  Tensor ws = random_tensor({c.out_c}, 23, 0.004f);
  for (int64_t o = 0; o < c.out_c; ++o) ws.data<float>()[o] = std::abs(ws.data<float>()[o]) + 0.002f;
  const Tensor b = random_tensor({c.out_c}, 24, 0.2f);
  // Narrower than the data, so some inputs saturate.
  const QuantParams in = params_for_range(-1.0f, 1.6f, c.in_type);

  Int8SmallConvSpec spec;
  spec.in_c = c.in_c, spec.in_h = c.h, spec.in_w = c.w, spec.out_c = c.out_c, spec.kh = c.kh, spec.kw = c.kw;
  spec.stride_h = spec.stride_w = c.stride;
  spec.pad_h = spec.pad_w = c.pad;
  spec.input = in;
  spec.relu = c.relu;
  const Tensor want = reference(c, x, wq, ws, b, in);
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < want.numel(); ++i) lo = std::min(lo, want.data<float>()[i]), hi = std::max(hi, want.data<float>()[i]);
  if (c.out_type) spec.output = params_for_range(lo * 0.8f, hi * 0.8f, *c.out_type);  // some outputs saturate too
  ASSERT_EQ(want.shape(), (Shape{n, c.out_c, spec.out_h(), spec.out_w()}));

  const Int8SmallConv conv(spec, wq.data<int8_t>(), ws.data<float>(), b.data<float>());
  const int64_t oh = spec.out_h(), ow = spec.out_w(), per_sample = oh * ow * c.out_c;
  std::vector<float> got_f32(static_cast<size_t>(n * per_sample));
  std::vector<int8_t> got_q(got_f32.size());
  conv.run(x.data<float>(), n, c.out_type ? static_cast<void*>(got_q.data()) : static_cast<void*>(got_f32.data()));

  int64_t off_by_one = 0;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < c.out_c; ++o)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xx = 0; xx < ow; ++xx) {
          const float ref = want.data<float>()[((i * c.out_c + o) * oh + y) * ow + xx];
          const int64_t at = i * per_sample + (y * ow + xx) * c.out_c + o;  // nhwc
          if (!c.out_type) {
            worst = std::max(worst, std::abs(double(got_f32[at]) - ref));
            continue;
          }
          const int32_t q = *c.out_type == DType::u8 ? static_cast<uint8_t>(got_q[at]) : got_q[at];
          const int32_t diff = std::abs(q - quantize_value(ref, *spec.output));
          ASSERT_LE(diff, 1) << "sample " << i << " channel " << o << " at " << y << "," << xx;
          off_by_one += diff;
        }
  if (!c.out_type) {
    double m = 0;
    for (int64_t i = 0; i < want.numel(); ++i) m = std::max(m, std::abs(double(want.data<float>()[i])));
    EXPECT_LT(worst, 1e-5 * (1.0 + m));
    EXPECT_GT(m, 0.1);  // a non-trivial output
  } else {
    // Rounding the epilogue in another order moves a value across a rounding
    // boundary only rarely.
    EXPECT_LE(off_by_one, n * per_sample / 100 + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SmallConv,
    ::testing::Values(SmallConvCase{"fmnist_conv1_u8_to_u8_relu", 1, 28, 28, 32, 3, 3, 1, 0, DType::u8, DType::u8, true},
                      SmallConvCase{"s8_in_f32_out", 1, 13, 11, 16, 3, 3, 1, 1, DType::i8, std::nullopt, false},
                      SmallConvCase{"two_channels_s8_out_relu", 2, 10, 9, 20, 3, 3, 1, 1, DType::u8, DType::i8, true},
                      SmallConvCase{"wide_kernel_stride2", 1, 17, 19, 70, 5, 5, 2, 2, DType::u8, DType::u8, false},
                      SmallConvCase{"kernel_wider_than_8", 2, 12, 21, 5, 2, 9, 1, 0, DType::i8, std::nullopt, true},
                      SmallConvCase{"one_by_one", 1, 6, 7, 33, 1, 1, 1, 0, DType::i8, DType::i8, false}),
    [](const auto& info) { return info.param.name; });

TEST(SmallConv, PaysOnlyWithFewerDotsThanOneDnn) {
  EXPECT_TRUE(int8_small_conv_pays(1, 3, 3));   // 3 dots against 9
  EXPECT_TRUE(int8_small_conv_pays(2, 3, 3));   // 6 against 9
  EXPECT_TRUE(int8_small_conv_pays(1, 7, 7));   // 14 against 49
  EXPECT_FALSE(int8_small_conv_pays(3, 3, 3));  // 9 against 9
  EXPECT_FALSE(int8_small_conv_pays(16, 3, 3));
  EXPECT_FALSE(int8_small_conv_pays(1, 1, 1));  // 1 against 1
}

}  // namespace
}  // namespace leanai
