// leanai's int8 max pooling (kernels/maxpool_nhwc.h; int8_maxpool.h before the f32 path) on cnn-bn's two pools for a
// chunk of 64 samples (u8 NHWC, 2x2 windows at stride 2), one thread: median
// microseconds of 301 calls. Build it against two libleanai.a builds to
// compare a change side by side (this file as of the library's own commit).
//
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/int8_maxpool_probe.cpp build/libleanai.a -lhwy -o /tmp/int8_maxpool_probe
//   /tmp/int8_maxpool_probe
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "leanai/kernels/maxpool_nhwc.h"

int main() {
  omp_set_num_threads(1);
  // n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw
  const leanai::MaxPoolShape shapes[] = {{64, 32, 28, 28, 14, 14, 2, 2, 2, 2, 0, 0},
                                          {64, 64, 14, 14, 7, 7, 2, 2, 2, 2, 0, 0}};
  for (const leanai::MaxPoolShape& s : shapes) {
    std::vector<uint8_t> x(static_cast<size_t>(s.n * s.h * s.w * s.c), 3), y(static_cast<size_t>(s.n * s.oh * s.ow * s.c));
    std::vector<double> us;
    for (int r = 0; r < 301; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      leanai::maxpool_nhwc(s, leanai::PoolElement::u8, x.data(), y.data());
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
    std::printf("c=%lld %lldx%lld: %.1f us\n", static_cast<long long>(s.c), static_cast<long long>(s.h),
                static_cast<long long>(s.w), us[us.size() / 2]);
  }
}
