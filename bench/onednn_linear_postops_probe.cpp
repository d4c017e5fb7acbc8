// oneDNN 2.6: two eltwise_linear post-ops on one int8 convolution. The second
// runs with the first one's alpha and beta, so an int8 layer's post-op chain
// keeps a single linear (runtime/lower_quantized.cpp, int8_layer_attr).
// A 1x1 convolution of 16 channels with identity weights, u8 source 4, output
// scale 0.5 (so 2 before the post-ops), then linear(2, 1) and linear(3, 0):
// right is (2 * 2 + 1) * 3 = 15; the faulty result is (2 * 2 + 1) * 2 + 1 = 11.
//
//   g++ -O2 -std=c++17 bench/onednn_linear_postops_probe.cpp -ldnnl -o /tmp/onednn_linear_postops_probe
//   /tmp/onednn_linear_postops_probe; DNNL_MAX_CPU_ISA=AVX2 /tmp/onednn_linear_postops_probe
#include <dnnl.hpp>
#include <cstdint>
#include <cstdio>

int main() {
  using namespace dnnl;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const memory::dims src{1, 16, 4, 4}, wei{16, 16, 1, 1};
  const memory::desc sd(src, dt::u8, tag::nhwc), dd(src, dt::f32, tag::nhwc);
  primitive_attr attr;
  post_ops po;
  po.append_eltwise(1.0f, algorithm::eltwise_linear, 2.0f, 1.0f);
  po.append_eltwise(1.0f, algorithm::eltwise_linear, 3.0f, 0.0f);
  attr.set_post_ops(po);
  attr.set_output_scales(0, {0.5f});
  const convolution_forward::desc cd(prop_kind::forward_inference, algorithm::convolution_direct, sd,
                                     memory::desc(wei, dt::s8, tag::any), dd, {1, 1}, {0, 0}, {0, 0});
  const convolution_forward::primitive_desc pd(cd, attr, eng);
  memory sm(sd, eng), wm(pd.weights_desc(), eng), dm(dd, eng), plain({wei, dt::s8, tag::oihw}, eng);
  auto* w = static_cast<int8_t*>(plain.get_data_handle());
  for (int i = 0; i < 256; ++i) w[i] = i / 16 == i % 16 ? 1 : 0;
  reorder(plain, wm).execute(s, plain, wm);
  auto* x = static_cast<uint8_t*>(sm.get_data_handle());
  for (int i = 0; i < 256; ++i) x[i] = 4;
  convolution_forward(pd).execute(s, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dm}});
  s.wait();
  const float y = static_cast<float*>(dm.get_data_handle())[0];
  std::printf("%s: %g (right: 15; second linear with the first one's alpha and beta: 11)\n", pd.impl_info_str(), y);
  return y == 15.0f ? 0 : 1;
}
