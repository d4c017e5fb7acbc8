// Short measurements of what this machine really delivers: GEMM throughput
// (oneDNN matmul) in fp32, bf16 and int8, and memory bandwidth (STREAM triad),
// each on one thread and on all threads. Numbers are medians of several timed
// runs after warm-up; the primitive is created once per thread count, outside
// the timing. Tests never assert on these values, only that they are sane.
//
//   MeasuredPeaks p = measure_peaks(MicrobenchConfig::quick(), topology);
//   p.fp32.all_threads.median   // GFLOP/s
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "leanai/hw/cpu_features.h"
#include "leanai/hw/topology.h"

namespace leanai {

// Medians and best of the timed runs, in the unit of the measurement.
struct Throughput {
  double median = 0, best = 0;
  int runs = 0;
  int threads = 0;
};

// One GEMM precision: C[M,N] = A[M,K] . B[K,N], weights in oneDNN's preferred layout.
struct GemmPeak {
  std::string precision;  // "fp32" (f32.f32->f32), "bf16" (bf16.bf16->f32), "int8" (u8.s8->s32)
  std::string unit;       // "GFLOP/s", or "GOP/s" for int8
  bool available = false;
  std::string reason;     // why not measured, when !available
  std::string kernel;     // oneDNN's implementation, e.g. "brg:avx512_core_vnni"
  int64_t size_one_thread = 0, size_all_threads = 0;  // M = N = K
  Throughput one_thread, all_threads;
};

// STREAM triad a[i] = b[i] + s * c[i] over three double arrays each several
// times the last-level cache; counted as STREAM does: 24 bytes per element.
struct BandwidthPeak {
  bool available = false;
  std::string reason;
  int64_t array_bytes = 0;  // one array
  Throughput one_thread, all_threads;  // GB/s (1e9 bytes/s)
};

struct MeasuredPeaks {
  std::string mode;  // "quick" or "full"
  double seconds = 0;  // wall time of all measurements
  double load_average = -1;  // 1-minute load average before measuring (/proc/loadavg); -1 if unknown
  GemmPeak fp32, bf16, int8;
  BandwidthPeak memory;
};

struct MicrobenchConfig {
  std::string mode = "quick";
  int warmup = 2;
  int runs = 7;                   // timed runs, fewer if one run is slow (see budget)
  double budget_seconds = 0.4;    // per measurement, after warm-up
  int64_t gemm_size = 1024;       // M = N = K; all-threads uses 2048 above 16 threads
  static MicrobenchConfig quick() { return {}; }
  static MicrobenchConfig full() { return {"full", 5, 31, 4.0, 1024}; }
};

// Called before each measurement (done of total, e.g. "int8 GEMM, 2 threads") and once at the end.
using MeasureProgress = std::function<void(int done, int total, const std::string& step)>;

// Runs every measurement; restores the thread count it found. bf16 is measured
// only when the CPU has native bf16 (AVX512_BF16 or AMX-BF16).
MeasuredPeaks measure_peaks(const MicrobenchConfig& cfg, const CpuFeatures& features, const CpuTopology& topology,
                            const MeasureProgress& progress = {});

// The single measurements, `threads` <= 0 meaning all.
Throughput measure_gemm(const std::string& precision, int64_t size, int threads, const MicrobenchConfig& cfg,
                        std::string* kernel = nullptr);
Throughput measure_triad_bandwidth(int64_t array_bytes, int threads, const MicrobenchConfig& cfg);

// Median of a non-empty sample (mean of the middle two for an even count).
double median_of(std::vector<double> v);

}  // namespace leanai
