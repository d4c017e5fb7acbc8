// leanai's f32 small-channel convolution (kernels/f32_small_conv.h) on one
// first layer at batch 1: a 3x3 conv at padding 1 with ReLU and the fused
// 2x2 max pool, in_c -> out_c channels on a size x size image. Prints the
// median microseconds of 5,000 calls on one core and with the rows split
// over 2 threads, three times each. Build it against two libleanai.a builds
// to compare a change side by side (the split figure in f32_small_conv.cpp:
// 3 32 32, interleaved runs of each build).
//
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/small_conv_probe.cpp build/libleanai.a -lhwy -ldnnl -lfmt -o /tmp/conv
//   /tmp/conv 3 32 32      # in_c out_c size
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "leanai/core/threads.h"
#include "leanai/kernels/f32_small_conv.h"
#include "probe_timing.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s IN_C OUT_C SIZE\n", argv[0]);
    return 2;
  }
  leanai::F32SmallConvSpec s;
  s.in_c = std::atoll(argv[1]), s.out_c = std::atoll(argv[2]), s.in_h = s.in_w = std::atoll(argv[3]);
  s.pad_h = s.pad_w = 1, s.relu = true, s.pool = true;
  leanai::set_num_threads(2);
  std::vector<float> w(s.out_c * s.in_c * 9, 0.01f), b(s.out_c, 0.0f), x(s.in_c * s.in_h * s.in_w, 1.0f),
      y(s.out_c * s.y_h() * s.y_w());
  for (bool split : {false, true}) {
    s.split_rows = split;
    const leanai::F32SmallConv conv(s, w.data(), b.data());
    std::printf("%s:", split ? "rows split over 2 threads" : "one core");
    for (int i = 0; i < 3; ++i) std::printf(" %.2f", leanai::probe::percentile_us([&] { conv.run(x.data(), 1, y.data()); }, 0.5, 5000));
    std::printf(" us\n");
  }
}
