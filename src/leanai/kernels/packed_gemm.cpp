// Highway compiles this file once per target (foreach_target.h re-includes
// it); HWY_ONCE marks the single pass that defines the dispatching entries.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "leanai/kernels/packed_gemm.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "leanai/kernels/packed_gemm.h"

HWY_BEFORE_NAMESPACE();
namespace leanai {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes, so a panel is 2 AVX-512 vectors, 4 AVX2 or 8 SSE4 ones.
using Tag = hn::CappedTag<float, 16>;
constexpr int kVectors = static_cast<int>(kGemmPanel / hn::MaxLanes(Tag()));
// Rows per tile: as many accumulators as the registers hold next to the
// panel's vectors and one broadcast, at most 12 (6 rows on AVX-512 with its
// 32 registers, 2 on AVX2 with 16): enough independent FMAs to hide their
// latency without spilling.
constexpr int kRegisters = kVectors <= 2 ? 32 : 16;  // 16-float vectors: AVX-512
constexpr int kTileRows = std::max(1, std::min(12, kRegisters - kVectors - 1) / kVectors);

// The bias for a tile of `width` columns starting at j0, of which `cols`
// exist: bias + j0, or, for a partial tile, a copy padded with zeros into
// `pad` (at least `width` floats), so the tile loads whole vectors. Null
// without a bias.
inline const float* tile_bias(const float* bias, int64_t j0, int64_t cols, int64_t width, float* pad) {
  if (!bias) return nullptr;
  if (cols == width) return bias + j0;
  std::fill(pad, pad + width, 0.0f);
  std::memcpy(pad, bias + j0, static_cast<size_t>(cols) * sizeof(float));
  return pad;
}

// y rows [0, kRows) x one panel's columns [0, cols), over all of k, for a
// panel of kPanelVectors vectors: two strips (kVectors), or one (half as
// many). A panel's second strip starts `strip_floats` after its first.
// With few rows (one, at batch 1) a single set of accumulators would
// chain each FMA on the last one's result, so k is then split into kSplit
// interleaved partial sums (8 accumulators at least), added at the end.
// kSumVectors sizes kSplit: one strip of a panel counts the whole panel's
// vectors, so each column sums in the same order whichever way it is cut.
// kPrefetch: the panel streams from L2 (see PackedGemmBlock).
template <int kRows, int kPanelVectors, int kSumVectors, bool kPrefetch>
void tile(const float* const* HWY_RESTRICT x, const float* HWY_RESTRICT panel, int64_t strip_floats, int64_t k,
          const float* HWY_RESTRICT bias, bool relu, float* HWY_RESTRICT y, int64_t ldy, int64_t cols) {
  const Tag d;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(Tag()));
  constexpr int64_t kWidth = kPanelVectors * N;
  static_assert(kGemmStrip * sizeof(float) == 64, "a strip's row is one cache line");
  constexpr int kSplit = (8 + kRows * kSumVectors - 1) / (kRows * kSumVectors);
  constexpr int64_t kAhead = 32;  // feature rows
  using V = hn::Vec<Tag>;
  V acc[kSplit][kRows][kPanelVectors];
  for (int v = 0; v < kPanelVectors; ++v) {
    const V b = bias ? hn::LoadU(d, bias + v * N) : hn::Zero(d);
    for (int r = 0; r < kRows; ++r) {
      acc[0][r][v] = b;
      for (int s = 1; s < kSplit; ++s) acc[s][r][v] = hn::Zero(d);
    }
  }
  // Vector v holds columns [v N, v N + N): strip v N / kGemmStrip, at v N % kGemmStrip in its row.
  auto at = [&](int v, int64_t p) {
    return panel + (v * N / kGemmStrip) * strip_floats + p * kGemmStrip + v * N % kGemmStrip;
  };
  // Feature p into the partial sums of set s.
  auto step = [&](int s, int64_t p) HWY_ATTR {
    V w[kPanelVectors];
    for (int v = 0; v < kPanelVectors; ++v) w[v] = hn::LoadU(d, at(v, p));
    // With 2-4 rows the kernel streams the panel from L2 (one row takes
    // wide_row, which needs no prefetch): this asks 32 feature rows (2 KB
    // per strip) ahead for each strip's 64-byte row. At 2 rows, medians of
    // 5 interleaved runs of bench/packed_gemv_probe.cpp N K THREADS 2 with
    // and without it: 80 x 784 on one core 2.75 against 4.18 us, 512 x 784
    // split 14.6 against 18.0; at 4 rows no difference.
    if constexpr (kPrefetch)
      if (p + kAhead < k)
        for (int v = 0; v < kPanelVectors; v += kGemmStrip / N) hwy::Prefetch(at(v, p + kAhead));
    for (int r = 0; r < kRows; ++r) {
      const V a = hn::Set(d, x[r][p]);
      for (int v = 0; v < kPanelVectors; ++v) acc[s][r][v] = hn::MulAdd(a, w[v], acc[s][r][v]);
    }
  };
  int64_t p = 0;
  for (; p + kSplit <= k; p += kSplit)
    for (int s = 0; s < kSplit; ++s) step(s, p + s);
  for (; p < k; ++p) step(0, p);
  for (int s = 1; s < kSplit; ++s)
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kPanelVectors; ++v) acc[0][r][v] = hn::Add(acc[0][r][v], acc[s][r][v]);
  for (int r = 0; r < kRows; ++r) {
    if (relu)
      for (int v = 0; v < kPanelVectors; ++v) acc[0][r][v] = hn::Max(acc[0][r][v], hn::Zero(d));
    if (cols == kWidth) {
      for (int v = 0; v < kPanelVectors; ++v) hn::StoreU(acc[0][r][v], d, y + r * ldy + v * N);
      continue;
    }
#if HWY_TARGET <= HWY_AVX3
    // AVX-512 stores a partial panel's last vector masked: memcpy calls for
    // partial panels (this one and PackedGemmBlock's bias copy) took 3% of a
    // small gated net's batch-1 run under perf. AVX-512 masking never faults
    // on the lanes it skips; AVX2's vmaskmovps may on AMD, so other targets
    // keep the copy.
    for (int v = 0; v < kPanelVectors; ++v) {
      const int64_t lanes = std::min(N, cols - v * N);
      if (lanes == N)
        hn::StoreU(acc[0][r][v], d, y + r * ldy + v * N);
      else if (lanes > 0)
        hn::BlendedStore(acc[0][r][v], hn::FirstN(d, static_cast<size_t>(lanes)), d, y + r * ldy + v * N);
    }
#else
    HWY_ALIGN float row[kWidth];
    for (int v = 0; v < kPanelVectors; ++v) hn::Store(acc[0][r][v], d, row + v * N);
    std::memcpy(y + r * ldy, row, static_cast<size_t>(cols) * sizeof(float));
#endif
  }
}

// One row (batch 1, or a block's or expert's one token): tiles of up to
// kWideVectors vectors (8 strips on AVX-512, 4 on AVX2), or the whole
// matrix when it is narrower, with kSplit(W) partial sums per column for a
// matrix W vectors wide (one from 8 vectors up). Against panels of 2 strips
// that is one broadcast of x per up to 8 FMAs, no partial sums to add up on
// wide matrices, and up to 8 strips streamed at once, which the hardware
// prefetcher follows without the software prefetch. Each column sums in the
// same order however its strips are cut, so splits keep their bits.
// Medians of 5 interleaved runs of bench/packed_gemv_probe.cpp N K THREADS,
// panels against this, on a busy host: on one core 512 x 16 0.45 -> 0.32 us,
// 512 x 64 1.85 -> 1.24, 77 x 154 0.54 -> 0.45; split over 2 threads
// 512 x 784 11.4 -> 9.0, 154 x 784 4.2 -> 3.5, 256 x 512 4.6 -> 3.9. Two
// small ones lost 0.01-0.02 us: 26 x 77 (0.13 -> 0.15) and 154 x 16.
constexpr int kWideVectors = 8;
constexpr int64_t kStripVectors = kGemmStrip / static_cast<int64_t>(hn::MaxLanes(Tag()));
// Not on HWY_SCALAR, whose one-float vectors make a strip 16 of them.
constexpr bool kHasWideRows = kStripVectors <= kWideVectors;

// Strips [u0, u1) of y's row against x_row, at most kW vectors at a time,
// every column in kSplit(kW) partial sums.
template <int kW>
void wide_row_tiles(const float* x_row, const float* strips, int64_t n, int64_t k, const float* bias, bool relu,
                    float* y, int64_t u0, int64_t u1) {
  const int64_t strip_floats = kGemmStrip * k, tile_strips = std::max<int64_t>(1, kW / kStripVectors);
  const float* x_rows[1] = {x_row};
  HWY_ALIGN float pad[kWideVectors * kGemmStrip];
  for (int64_t u = u0; u < u1; u += tile_strips) {
    const int64_t strips_here = std::min(u1 - u, tile_strips), j0 = u * kGemmStrip;
    const int64_t cols = std::min(strips_here * kGemmStrip, n - j0);
    const float* b = tile_bias(bias, j0, cols, strips_here * kGemmStrip, pad);
    const float* panel = strips + u * strip_floats;
    switch (strips_here * kStripVectors) {
#define LEANAI_WIDE_TILE(V)                                                                                  \
  case V:                                                                                                    \
    if constexpr (V <= kW) tile<1, V, kW, false>(x_rows, panel, strip_floats, k, b, relu, y + j0, 0, cols); \
    break;
      LEANAI_WIDE_TILE(8)
      LEANAI_WIDE_TILE(7)
      LEANAI_WIDE_TILE(6)
      LEANAI_WIDE_TILE(5)
      LEANAI_WIDE_TILE(4)
      LEANAI_WIDE_TILE(3)
      LEANAI_WIDE_TILE(2)
      LEANAI_WIDE_TILE(1)
#undef LEANAI_WIDE_TILE
    }
  }
}

// Strips [u0, u1) of one row of y, for a matrix of n outputs (see kWideVectors).
void wide_row(const float* x_row, const float* strips, int64_t n, int64_t k, const float* bias, bool relu, float* y,
              int64_t u0, int64_t u1) {
  const int64_t vectors = (n + kGemmStrip - 1) / kGemmStrip * kStripVectors;
  switch (std::min<int64_t>(vectors, kWideVectors)) {
    case 8: return wide_row_tiles<8>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 7: return wide_row_tiles<7>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 6: return wide_row_tiles<6>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 5: return wide_row_tiles<5>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 4: return wide_row_tiles<4>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 3: return wide_row_tiles<3>(x_row, strips, n, k, bias, relu, y, u0, u1);
    case 2: return wide_row_tiles<2>(x_row, strips, n, k, bias, relu, y, u0, u1);
    default: return wide_row_tiles<1>(x_row, strips, n, k, bias, relu, y, u0, u1);
  }
}

template <int kRows, int kPanelVectors, int kSumVectors, bool kPrefetch>
void rows_tail(int64_t rows, const float* const* x, const float* panel, int64_t strip_floats, int64_t k,
               const float* bias, bool relu, float* y, int64_t ldy, int64_t cols) {
  if constexpr (kRows > 0) {
    if (rows == kRows)
      return tile<kRows, kPanelVectors, kSumVectors, kPrefetch>(x, panel, strip_floats, k, bias, relu, y, ldy, cols);
    rows_tail<kRows - 1, kPanelVectors, kSumVectors, kPrefetch>(rows, x, panel, strip_floats, k, bias, relu, y, ldy,
                                                                cols);
  }
}

// Rows [r0, r1) of y against kPanelVectors vectors of a panel (see tile).
template <int kPanelVectors, int kSumVectors, bool kPrefetch>
void panel_rows(const float* x, int64_t ldx, const int64_t* rows, const float* panel, int64_t strip_floats, int64_t k,
                const float* bias, bool relu, float* y, int64_t ldy, int64_t r0, int64_t r1, int64_t cols) {
  const float* x_rows[kTileRows];
  auto point_rows = [&](int64_t first, int64_t count) {
    for (int64_t i = 0; i < count; ++i) x_rows[i] = x + (rows ? rows[first + i] : first + i) * ldx;
  };
  int64_t r = r0;
  for (; r + kTileRows <= r1; r += kTileRows) {
    point_rows(r, kTileRows);
    tile<kTileRows, kPanelVectors, kSumVectors, kPrefetch>(x_rows, panel, strip_floats, k, bias, relu, y + r * ldy, ldy,
                                                           cols);
  }
  if (r < r1) {
    point_rows(r, r1 - r);
    rows_tail<kTileRows - 1, kPanelVectors, kSumVectors, kPrefetch>(r1 - r, x_rows, panel, strip_floats, k, bias, relu,
                                                                    y + r * ldy, ldy, cols);
  }
}

// Rows [r0, r1) of y against a panel cut as kPanelVectors / kSumVectors
// say (see tile), prefetched when `stream`.
template <int kPanelVectors, int kSumVectors>
void cut_panel_rows(bool stream, const float* x, int64_t ldx, const int64_t* rows, const float* panel,
                    int64_t strip_floats, int64_t k, const float* bias, bool relu, float* y, int64_t ldy, int64_t r0,
                    int64_t r1, int64_t cols) {
  if (stream)
    panel_rows<kPanelVectors, kSumVectors, true>(x, ldx, rows, panel, strip_floats, k, bias, relu, y, ldy, r0, r1,
                                                 cols);
  else
    panel_rows<kPanelVectors, kSumVectors, false>(x, ldx, rows, panel, strip_floats, k, bias, relu, y, ldy, r0, r1,
                                                  cols);
}

// Rows [r0, r1) of y, columns [16 u0, 16 u1): strips u0 to u1, taken two
// at a time (strips 2q and 2q + 1 make panel q) where both are in range; one
// row by wide_row. Row i reads x row rows[i] (i when rows is null).
// may_prefetch: a call of a few rows (batch 2-4, an expert's few tokens),
// which streams the weights (the batched path reuses each strip row over
// many x rows, and was not measured with prefetching).
void PackedGemmBlock(const float* x, int64_t ldx, const int64_t* rows, const float* strips, int64_t n, int64_t k,
                     const float* bias, bool relu, float* y, int64_t ldy, int64_t r0, int64_t r1, int64_t u0,
                     int64_t u1, bool may_prefetch) {
  if (kHasWideRows && r1 - r0 == 1)
    return wide_row(x + (rows ? rows[r0] : r0) * ldx, strips, n, k, bias, relu, y + r0 * ldy, u0, u1);
  const int64_t strip_floats = kGemmStrip * k, strips_in_matrix = (n + kGemmStrip - 1) / kGemmStrip;
  // Weights beyond what L1 holds are streamed from L2 on every call: those
  // are prefetched. Smaller ones stay in L1 from one call to the next, where
  // a prefetch is only an extra instruction.
  constexpr int64_t kStreamBytes = 32 << 10;
  const bool stream = may_prefetch && (u1 - u0) * strip_floats * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
  HWY_ALIGN float pad[kGemmPanel];
  for (int64_t u = u0; u < u1;) {
    const bool whole = u % 2 == 0 && u + 1 < u1;  // both strips of panel u / 2
    const int64_t width = whole ? kGemmPanel : kGemmStrip, j0 = u * kGemmStrip, cols = std::min(width, n - j0);
    const float* b = tile_bias(bias, j0, cols, width, pad);
    const float* panel = strips + u * strip_floats;
    if (whole)
      cut_panel_rows<kVectors, kVectors>(stream, x, ldx, rows, panel, strip_floats, k, b, relu, y + j0, ldy, r0, r1,
                                         cols);
    else if (u % 2 == 1 || u + 1 < strips_in_matrix)  // one strip of a panel cut in two: sums in the panel's order
      cut_panel_rows<kVectors / 2, kVectors>(stream, x, ldx, rows, panel, strip_floats, k, b, relu, y + j0, ldy, r0,
                                             r1, cols);
    else  // a last strip without a partner: as many partial sums as its own vectors allow
      cut_panel_rows<kVectors / 2, kVectors / 2>(stream, x, ldx, rows, panel, strip_floats, k, b, relu, y + j0, ldy,
                                                 r0, r1, cols);
    u += whole ? 2 : 1;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace leanai
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

namespace leanai {

HWY_EXPORT(PackedGemmBlock);

namespace {
int64_t panel_count(int64_t n) { return (n + kGemmPanel - 1) / kGemmPanel; }
// Strips (PackedGemmBlock's column ranges): 16 outputs each.
int64_t strip_count(int64_t n) { return (n + kGemmStrip - 1) / kGemmStrip; }
}  // namespace

int64_t packed_gemm_floats(int64_t n, int64_t k) { return n <= 0 ? 0 : strip_count(n) * kGemmStrip * k; }

void pack_gemm_weights(const float* w, int64_t n, int64_t k, float* packed) {
  for (int64_t u = 0; u < strip_count(n); ++u)
    for (int64_t i = 0; i < k; ++i) {
      float* dst = packed + (u * k + i) * kGemmStrip;
      for (int64_t j = 0; j < kGemmStrip; ++j) {
        const int64_t row = u * kGemmStrip + j;
        dst[j] = row < n ? w[row * k + i] : 0.0f;
      }
    }
}

Tensor pack_gemm_stack(const float* w, int64_t count, int64_t n, int64_t k) {
  const int64_t each = packed_gemm_floats(n, k);
  Tensor packed = Tensor::empty({count * each});
  for (int64_t e = 0; e < count; ++e) pack_gemm_weights(w + e * n * k, n, k, packed.data<float>() + e * each);
  return packed;
}

bool packed_gemm_worth_splitting(int64_t macs) {
  return macs >= (int64_t{1} << 20) && !omp_in_parallel() && omp_get_max_threads() > 1;
}

std::string pack_gemm_kind(int64_t count, int64_t n, int64_t k) {
  return "gemm panels " + std::to_string(count) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

void packed_gemm(int64_t m, const float* x, int64_t ldx, PackedGemmWeights w, const float* bias, bool relu, float* y,
                 int64_t ldy) {
  packed_gemm_rows(m, x, ldx, nullptr, w, bias, relu, y, ldy);
}

bool packed_gemm_panels_can_split(int64_t n, int64_t k) {
  // Below 64 KB of weights (under a microsecond to stream) waking the threads costs more.
  constexpr int64_t kSplitMinWeightBytes = 64 << 10;
  return strip_count(n) >= 2 && n * k * static_cast<int64_t>(sizeof(float)) >= kSplitMinWeightBytes &&
         !omp_in_parallel() && omp_get_max_threads() > 1;
}

void packed_gemm_by_panels(int64_t m, const float* x, int64_t ldx, PackedGemmWeights w, const float* bias, bool relu,
                           float* y, int64_t ldy, bool may_split) {
  if (m <= 0 || w.n <= 0) return;
  const int64_t strips = strip_count(w.n);
  auto block = HWY_DYNAMIC_DISPATCH(PackedGemmBlock);
  if (!may_split || !packed_gemm_panels_can_split(w.n, w.k))
    return block(x, ldx, nullptr, w.strips, w.n, w.k, bias, relu, y, ldy, 0, m, 0, strips, true);
  // Split by strips: 5 panels (154 gated outputs) would go 3 + 2, and the
  // core with 3 would stream 96 columns where 80 is the fair share.
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t u0 = strips * t / threads, u1 = strips * (t + 1) / threads;
    if (u0 < u1) block(x, ldx, nullptr, w.strips, w.n, w.k, bias, relu, y, ldy, 0, m, u0, u1, true);
  }
}

void packed_gemm_rows(int64_t m, const float* x, int64_t ldx, const int64_t* rows, PackedGemmWeights w,
                      const float* bias, bool relu, float* y, int64_t ldy) {
  if (m <= 0 || w.n <= 0) return;
  const int64_t panels = panel_count(w.n), strips = strip_count(w.n);
  auto block = HWY_DYNAMIC_DISPATCH(PackedGemmBlock);
  // A few rows (2-4: an expert's or block's few tokens) stream the weights
  // from L2, so they prefetch (one row takes wide_row, which needs none).
  constexpr int64_t kStreamRows = 4;
  if (!packed_gemm_worth_splitting(m * w.n * w.k))
    return block(x, ldx, rows, w.strips, w.n, w.k, bias, relu, y, ldy, 0, m, 0, strips, m <= kStreamRows);
  // Items of 24 rows (a multiple of every target's tile height) x one panel.
  constexpr int64_t kRowsPerItem = 24;
  const int64_t row_items = (m + kRowsPerItem - 1) / kRowsPerItem;
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < row_items * panels; ++item) {
    const int64_t r0 = (item / panels) * kRowsPerItem, p = item % panels;
    block(x, ldx, rows, w.strips, w.n, w.k, bias, relu, y, ldy, r0, std::min(m, r0 + kRowsPerItem), 2 * p,
          std::min(strips, 2 * p + 2), false);
  }
}

}  // namespace leanai
#endif  // HWY_ONCE
