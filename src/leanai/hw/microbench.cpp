#include "leanai/hw/microbench.h"

#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "leanai/core/dtype.h"
#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/threads.h"
#include "leanai/kernels/dnnl_context.h"

namespace leanai {
namespace {

using Clock = std::chrono::steady_clock;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Sets the thread count for one measurement (and flushes denormals on
// those threads) and restores the previous count.
struct ThreadScope {
  explicit ThreadScope(int threads) : count(threads) { flush_denormals(); }
  ScopedThreads count;
};

// Times `run` (warm-up first); stops early when the budget is spent, after at least 3 runs.
template <class F>
std::vector<double> time_runs(const MicrobenchConfig& cfg, F&& run) {
  for (int i = 0; i < cfg.warmup; ++i) run();
  std::vector<double> times;
  const auto start = Clock::now();
  for (int i = 0; i < std::max(cfg.runs, 1); ++i) {
    const auto t0 = Clock::now();
    run();
    times.push_back(seconds_since(t0));
    if (times.size() >= 3 && seconds_since(start) > cfg.budget_seconds) break;
  }
  return times;
}

Throughput summarize(const std::vector<double>& times, double work_per_run, int threads) {
  Throughput t;
  t.runs = static_cast<int>(times.size());
  t.threads = threads;
  const double med = median_of(times), fastest = *std::min_element(times.begin(), times.end());
  t.median = med > 0 ? work_per_run / med : 0;
  t.best = fastest > 0 ? work_per_run / fastest : 0;
  return t;
}

// Fills a plain memory with small random values of its data type.
void fill_random(const dnnl::memory& m, dt type, uint64_t seed) {
  Rng rng(seed);
  const size_t bytes = m.get_desc().get_size();
  void* p = m.get_data_handle();
  switch (type) {
    case dt::f32:
      for (size_t i = 0; i < bytes / 4; ++i) static_cast<float*>(p)[i] = rng.uniform(-1.0f, 1.0f);
      break;
    case dt::bf16:
      for (size_t i = 0; i < bytes / 2; ++i) static_cast<uint16_t*>(p)[i] = f32_to_bf16(rng.uniform(-1.0f, 1.0f));
      break;
    case dt::u8:
      for (size_t i = 0; i < bytes; ++i) static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(rng.below(128));
      break;
    case dt::s8:
      for (size_t i = 0; i < bytes; ++i) static_cast<int8_t*>(p)[i] = static_cast<int8_t>(static_cast<int>(rng.below(128)) - 64);
      break;
    default:
      std::memset(p, 0, bytes);
  }
}

struct GemmTypes {
  dt src, wei, dst;
};

GemmTypes gemm_types(const std::string& precision) {
  if (precision == "fp32") return {dt::f32, dt::f32, dt::f32};
  if (precision == "bf16") return {dt::bf16, dt::bf16, dt::f32};
  if (precision == "int8") return {dt::u8, dt::s8, dt::s32};
  throw Error("unknown GEMM precision '" + precision + "' (fp32, bf16 or int8)");
}

// Element (i, k) of a plain matrix of any of the GEMM types, as double.
double element(const dnnl::memory& m, dt type, int64_t index) {
  const void* p = m.get_data_handle();
  switch (type) {
    case dt::f32: return static_cast<const float*>(p)[index];
    case dt::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[index]);
    case dt::u8: return static_cast<const uint8_t*>(p)[index];
    case dt::s8: return static_cast<const int8_t*>(p)[index];
    case dt::s32: return static_cast<const int32_t*>(p)[index];
    default: return 0;
  }
}

// The GEMM really computed C = A.B: a few entries against a double-precision dot product.
void check_gemm_result(const dnnl::memory& a, const dnnl::memory& b, const dnnl::memory& c, const GemmTypes& t,
                       int64_t n) {
  for (int64_t i : {int64_t{0}, n / 2, n - 1}) {
    const int64_t j = (i * 7 + 3) % n;
    double ref = 0, magnitude = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double prod = element(a, t.src, i * n + k) * element(b, t.wei, k * n + j);
      ref += prod;
      magnitude += std::fabs(prod);
    }
    const double got = element(c, t.dst, i * n + j);
    if (!(std::fabs(got - ref) <= 1e-4 * magnitude + 1e-6))
      throw Error("oneDNN matmul gave a wrong result in the microbenchmark (C[" + std::to_string(i) + "," +
                  std::to_string(j) + "] = " + std::to_string(got) + ", expected " + std::to_string(ref) + ")");
  }
}

}  // namespace

double median_of(std::vector<double> v) {
  check(!v.empty(), "median of an empty sample");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

Throughput measure_gemm(const std::string& precision, int64_t size, int threads, const MicrobenchConfig& cfg,
                        std::string* kernel) {
  check(size > 0 && size <= 16384, "GEMM size must be in [1, 16384]");
  const GemmTypes types = gemm_types(precision);
  ThreadScope scope(threads);
  auto& eng = cpu_engine();
  auto& strm = cpu_stream();
  const dnnl::memory::dims dims = {size, size};
  const dnnl::memory::desc src_md(dims, types.src, tag::ab), dst_md(dims, types.dst, tag::ab);
  const dnnl::memory::desc wei_any(dims, types.wei, tag::any), wei_plain(dims, types.wei, tag::ab);

  // Descriptor, attributes (our scratchpad), primitive descriptor, primitive: once.
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, wei_any, dst_md), user_scratchpad(), eng);
  } catch (const dnnl::error& e) {
    throw Error("oneDNN has no " + precision + " matmul on this CPU (" + e.what() + ")");
  }
  if (kernel) *kernel = pd.impl_info_str();
  const dnnl::matmul prim(pd);

  dnnl::memory src(src_md, eng), dst(dst_md, eng), wei_user(wei_plain, eng), wei(pd.weights_desc(), eng);
  fill_random(src, types.src, 1);
  fill_random(wei_user, types.wei, 2);
  dnnl::reorder(wei_user, wei).execute(strm, wei_user, wei);  // pre-pack the weights, outside the timing
  strm.wait();
  const dnnl::memory scratch = scratchpad_for(pd.scratchpad_desc());
  const std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}};

  const std::vector<double> times = time_runs(cfg, [&] {
    prim.execute(strm, args);
    strm.wait();
  });
  check_gemm_result(src, wei_user, dst, types, size);
  const double ops = 2.0 * static_cast<double>(size) * static_cast<double>(size) * static_cast<double>(size);
  return summarize(times, ops / 1e9, num_threads());
}

Throughput measure_triad_bandwidth(int64_t array_bytes, int threads, const MicrobenchConfig& cfg) {
  check(array_bytes >= 1 << 20, "triad arrays must be at least 1 MiB");
  const int64_t n = array_bytes / static_cast<int64_t>(sizeof(double));
  ThreadScope scope(threads);
  // Uninitialized on purpose: first touch below, on the threads (and NUMA nodes)
  // that use each part in the triad's identical static schedule.
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  double* __restrict pa = a.get();
  const double* __restrict pb = b.get();
  const double* __restrict pc = c.get();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    a[i] = 0.0;
    b[i] = 1.0 + static_cast<double>(i % 7);
    c[i] = 2.0 - static_cast<double>(i % 5);
  }
  const double s = 3.0;
  const std::vector<double> times = time_runs(cfg, [&] {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
  });
  // The arrays were really written: check a few elements against the formula.
  for (int64_t i : {int64_t{0}, n / 3, n - 1})
    if (pa[i] != pb[i] + s * pc[i]) throw Error("memory bandwidth triad produced a wrong result (broken build?)");
  return summarize(times, 3.0 * static_cast<double>(n) * sizeof(double) / 1e9, num_threads());
}

MeasuredPeaks measure_peaks(const MicrobenchConfig& cfg, const CpuFeatures& f, const CpuTopology& topo,
                            const MeasureProgress& progress) {
  MeasuredPeaks p;
  constexpr int kSteps = 8;
  int step = 0;
  auto report = [&](const std::string& what) {
    if (progress) progress(step, kSteps, what);
  };
  p.mode = cfg.mode;
  // Other work competing for the cores lowers every number; record how much there was.
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    double load = 0;
    if (std::fscanf(f, "%lf", &load) == 1 && std::isfinite(load) && load >= 0) p.load_average = load;
    std::fclose(f);
  }
  const auto start = Clock::now();
  int all = 0;
  {
    ThreadScope probe_all(0);
    all = num_threads();
  }
  const int64_t all_size = all > 16 ? std::max<int64_t>(cfg.gemm_size, 2048) : cfg.gemm_size;

  auto gemm = [&](const std::string& precision, const std::string& unit, bool supported, const std::string& why_not) {
    GemmPeak g;
    g.precision = precision;
    g.unit = unit;
    const int step_after = step + 2;
    struct AdvanceStep {  // skipped or failed measurements still count as done
      int& step;
      int after;
      ~AdvanceStep() { step = after; }
    } advance{step, step_after};
    if (!supported) {
      g.reason = why_not;
      return g;
    }
    try {
      report(precision + " GEMM, 1 thread");
      g.one_thread = measure_gemm(precision, cfg.gemm_size, 1, cfg, &g.kernel);
      ++step;
      report(precision + " GEMM, " + std::to_string(all) + " threads");
      g.all_threads = measure_gemm(precision, all_size, 0, cfg);
      ++step;
      g.size_one_thread = cfg.gemm_size;
      g.size_all_threads = all_size;
      g.available = true;
    } catch (const std::exception& e) {  // leanai::Error, dnnl::error, bad_alloc
      g = GemmPeak();
      g.precision = precision;
      g.unit = unit;
      g.reason = e.what();
    }
    return g;
  };
  p.fp32 = gemm("fp32", "GFLOP/s", true, "");
  p.bf16 = gemm("bf16", "GFLOP/s", f.avx512_bf16 || f.amx_bf16,
                "no native bf16 (neither AVX512_BF16 nor AMX-BF16); oneDNN would only emulate it");
  p.int8 = gemm("int8", "GOP/s", true, "");

  // Each array 4x the last-level cache (all instances), as STREAM asks; at
  // least 64 MiB when caches are unknown; at most 1/16 of memory for all three.
  int64_t llc_total = 0;
  int top_level = 0;
  for (const CacheLevel& c : topo.caches)
    if (c.level > top_level) top_level = c.level;
  for (const CacheLevel& c : topo.caches)
    if (c.level == top_level) llc_total += c.size_bytes * std::max(c.instances, 1);
  int64_t array_bytes = std::max<int64_t>(4 * llc_total, int64_t{64} << 20);
  if (topo.total_memory_bytes > 0) array_bytes = std::min(array_bytes, topo.total_memory_bytes / 48);
  p.memory.array_bytes = array_bytes;
  try {
    report("memory bandwidth, 1 thread");
    p.memory.one_thread = measure_triad_bandwidth(array_bytes, 1, cfg);
    ++step;
    report("memory bandwidth, " + std::to_string(all) + " threads");
    p.memory.all_threads = measure_triad_bandwidth(array_bytes, 0, cfg);
    p.memory.available = true;
  } catch (const std::bad_alloc&) {
    p.memory.reason = "could not allocate 3 x " + std::to_string(array_bytes >> 20) + " MiB for the triad";
  }
  step = kSteps;
  report("done");
  p.seconds = seconds_since(start);
  return p;
}

}  // namespace leanai
