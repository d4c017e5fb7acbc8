// oneDNN 2.6's int8 Winograd convolution (jit_int8_wino, F(2x2, 3x3)) against
// its direct int8 kernel on the same quantized weights and u8 input: median
// time of 300 single-threaded runs and the output's relative RMS error against
// an exact f32 computation on the quantized values. Why leanai does not use it:
// it scales the source by 1/4 before the transform (two bits of the
// activation), an output error of a few percent, for at most ~1.3x.
//
//   g++ -O2 -std=c++17 bench/int8_winograd_probe.cpp -ldnnl -o /tmp/int8_winograd_probe
//   OMP_NUM_THREADS=1 /tmp/int8_winograd_probe 16 32 64 14   # batch, in, out channels, size
#include <dnnl.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include <algorithm>
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;
int main(int argc, char** argv) {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  int N = argc > 1 ? atoi(argv[1]) : 16, IC = argc > 2 ? atoi(argv[2]) : 32, OC = argc > 3 ? atoi(argv[3]) : 64, H = argc > 4 ? atoi(argv[4]) : 14;
  memory::dims src{N, IC, H, H}, wei{OC, IC, 3, 3}, dst{N, OC, H, H}, st{1, 1}, pad{1, 1};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> wf(OC * IC * 9), x(N * IC * H * H);
  for (auto& v : wf) v = nd(rng) * 0.1f;
  for (auto& v : x) v = std::max(0.f, nd(rng));  // post-ReLU activations
  const float sx = 4.0f / 255;                      // u8 scale
  std::vector<uint8_t> xq(x.size());
  for (size_t i = 0; i < x.size(); ++i) xq[i] = (uint8_t)std::min(255.f, std::nearbyint(x[i] / sx));
  std::vector<float> ws(OC);
  std::vector<int8_t> wq(wf.size());
  for (int o = 0; o < OC; ++o) {
    float m = 0;
    for (int i = 0; i < IC * 9; ++i) m = std::max(m, std::fabs(wf[o * IC * 9 + i]));
    ws[o] = m / 127;
    for (int i = 0; i < IC * 9; ++i) wq[o * IC * 9 + i] = (int8_t)std::nearbyint(wf[o * IC * 9 + i] / ws[o]);
  }
  // f32 reference on the quantized input and weights (what int8 direct computes exactly)
  std::vector<float> ref(N * OC * H * H, 0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < H; ++w) {
          double a = 0;
          for (int c = 0; c < IC; ++c)
            for (int kh = 0; kh < 3; ++kh)
              for (int kw = 0; kw < 3; ++kw) {
                int ih = h + kh - 1, iw = w + kw - 1;
                if (ih < 0 || iw < 0 || ih >= H || iw >= H) continue;
                a += (double)xq[((n * IC + c) * H + ih) * H + iw] * sx * wq[((o * IC + c) * 3 + kh) * 3 + kw] * ws[o];
              }
          ref[((n * OC + o) * H + h) * H + w] = (float)a;
        }
  double ref_rms = 0;
  for (float v : ref) ref_rms += v * v;
  ref_rms = std::sqrt(ref_rms / ref.size());
  memory xmem({src, dt::u8, tag::nchw}, eng, xq.data());
  for (auto alg : {algorithm::convolution_direct, algorithm::convolution_winograd}) {
    try {
      auto d = convolution_forward::desc(prop_kind::forward_inference, alg, memory::desc(src, dt::u8, tag::any),
                                         memory::desc(wei, dt::s8, tag::any), memory::desc(dst, dt::f32, tag::any), st, pad, pad);
      primitive_attr attr;
      std::vector<float> sc(OC);
      for (int o = 0; o < OC; ++o) sc[o] = sx * ws[o];
      attr.set_output_scales(2, sc);
      auto pd = convolution_forward::primitive_desc(d, attr, eng);
      memory a(pd.src_desc(), eng), w(pd.weights_desc(), eng), o(pd.dst_desc(), eng), sp(pd.scratchpad_desc(), eng);
      reorder(xmem, a).execute(s, xmem, a);
      if (alg == algorithm::convolution_direct) {
        memory wmem({wei, dt::s8, tag::oihw}, eng, wq.data());
        reorder(wmem, w).execute(s, wmem, w);
      } else {
        // the wino reorder quantizes f32 weights itself: pass the dequantized ones with scales 1 / ws
        std::vector<float> wdq(wf.size());
        for (int oc = 0; oc < OC; ++oc)
          for (int i = 0; i < IC * 9; ++i) wdq[oc * IC * 9 + i] = wq[oc * IC * 9 + i] * ws[oc];
        memory wmem({wei, dt::f32, tag::oihw}, eng, wdq.data());
        primitive_attr ra;
        std::vector<float> inv(OC);
        for (int oc = 0; oc < OC; ++oc) inv[oc] = 1 / ws[oc];
        ra.set_output_scales(1, inv);
        reorder(reorder::primitive_desc(wmem, w, ra)).execute(s, wmem, w);
      }
      s.wait();
      convolution_forward c(pd);
      std::vector<double> t;
      for (int i = 0; i < 300; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        c.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, o}, {DNNL_ARG_SCRATCHPAD, sp}});
        s.wait();
        t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      std::vector<float> got(ref.size());
      memory out({dst, dt::f32, tag::nchw}, eng, got.data());
      reorder(o, out).execute(s, o, out);
      s.wait();
      double e = 0;
      for (size_t i = 0; i < got.size(); ++i) e += (got[i] - ref[i]) * (got[i] - ref[i]);
      std::printf("%-10s %-36s %8.1f us  rel rms err %.2e\n", alg == algorithm::convolution_direct ? "direct" : "winograd",
                  pd.impl_info_str(), t[t.size() / 2], std::sqrt(e / got.size()) / ref_rms);
    } catch (const dnnl::error& e) {
      std::printf("%s unavailable: %s\n", alg == algorithm::convolution_direct ? "direct" : "winograd", e.what());
    }
  }
}
