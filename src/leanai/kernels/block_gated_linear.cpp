// block_gated_linear(x [N, D], weight [C, D], bias [C], gate_weight [B, D]),
// attributes blocks = B (C divisible by B) and top_k: input-conditional
// dynamic sparsity. The C output neurons form B blocks of S = C / B; a small
// gate network picks, per input row, the top_k blocks that run:
//
//   scores = x @ gate_weight^T                       [N, B]
//   kept   = the top_k scores of the row (ties: lower block first)
//   g      = top_k * softmax(kept scores)            so the mean scale is 1
//   y[n, block b] = g_nb * (x_n @ W_b^T + bias_b)    for kept b, else 0
//
// Why softmax times top_k: the softmax makes the kept blocks compete (the
// gate learns which of them matters more), and the factor top_k keeps the
// average scale at 1, so a dense linear layer's weights keep their meaning
// when it becomes block-gated (with_input_gates), and changing top_k does
// not rescale the next layer's input.
//
// Only the kept blocks are computed: the (row, block) pairs are grouped by
// block with a counting sort, each non-empty block's rows are gathered and
// multiplied in one GEMM against that block's weight rows, and the results
// are scattered back scaled by g. In a compiled Plan (weights fixed) the gate
// and block GEMMs run the packed small-M kernel of packed_gemm.h on weights
// packed once; elsewhere dnnl_sgemm. Every buffer is sized in prepare(), so a
// forward or backward pass allocates nothing.
//
// Backward reaches x, weight, bias and gate_weight (through g: the softmax's
// gradient flows to the kept scores). Which blocks are kept is a discrete
// choice and is not differentiated; an unselected block gets no gradient
// from that row.
//
// flops(): the work done, 2 * N * D * (B + top_k * S): the gate network plus
// top_k / B of the dense layer.
#include <cmath>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/packed_gemm.h"
#include "leanai/kernels/sgemm.h"

namespace leanai {
namespace {

class BlockGatedLinearKernel : public OpKernel {
 public:
  explicit BlockGatedLinearKernel(const Node& n) : blocks_(attr_int(n, "blocks", 0)), top_k_(attr_int(n, "top_k", 0)) {
    check(blocks_ >= 1, "block_gated_linear: attribute 'blocks' must be >= 1, got " + std::to_string(blocks_));
    check(top_k_ >= 1 && top_k_ <= blocks_, "block_gated_linear: top_k must be in [1, blocks = " +
                                                std::to_string(blocks_) + "], got " + std::to_string(top_k_));
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    const Shape &x = in[0], &w = in[1], &b = in[2], &gw = in[3];
    check(x.size() == 2, "block_gated_linear expects x [N, D], got " + shape_str(x));
    check(w.size() == 2 && w[1] == x[1], "block_gated_linear: weight must be [C, " + std::to_string(x[1]) +
                                             "] for x " + shape_str(x) + ", got " + shape_str(w));
    check(w[0] % blocks_ == 0, "block_gated_linear: " + std::to_string(w[0]) + " outputs do not split into " +
                                   std::to_string(blocks_) + " blocks; choose blocks dividing the output count");
    check(b == Shape{w[0]}, "block_gated_linear: bias must be [" + std::to_string(w[0]) + "], got " + shape_str(b));
    check(gw == (Shape{blocks_, x[1]}), "block_gated_linear: gate_weight must be [" + std::to_string(blocks_) + ", " +
                                            std::to_string(x[1]) + "] (blocks x inputs), got " + shape_str(gw));
    rows_ = x[0];
    in_ = x[1];
    out_ = w[0];
    size_ = out_ / blocks_;
    packed_w_ = packed_gate_ = Tensor();  // new shapes: packed weights, if any, are stale
    const int64_t entries = rows_ * top_k_;
    scores_.assign(rows_ * blocks_, 0.0f);
    chosen_.assign(entries, 0);
    g_.assign(entries, 0.0f);
    pos_.assign(entries, 0);
    row_of_.assign(entries, 0);
    start_.assign(blocks_ + 1, 0);
    fill_.assign(blocks_, 0);
    xg_.assign(entries * in_, 0.0f);
    hg_.assign(entries * size_, 0.0f);
    if (training) {
      dhg_.assign(entries * size_, 0.0f);
      dxg_.assign(entries * in_, 0.0f);
      dscores_.assign(rows_ * blocks_, 0.0f);
      dg_.assign(entries, 0.0);
    }
    return {rows_, out_};
  }

  void forward(const Inputs& in, Tensor& out, RunContext&) override {
    const float* x = in[0]->data<float>();
    const float* w = in[1]->data<float>();
    const float* bias = in[2]->data<float>();
    linear_rows(rows_, x, in_, in[3]->data<float>(), packed_gate_.defined() ? packed_gate_.data<float>() : nullptr,
                blocks_, in_, nullptr, false, scores_.data(), blocks_);
    choose_blocks();
    group_by_block();
    const int64_t entries = rows_ * top_k_, d = in_;
    const bool packed = packed_w_.defined();
    float* xg = xg_.data();
    const int64_t* row_of = row_of_.data();
    // dnnl_sgemm needs each block's rows together: gather them (the packed
    // kernel reads them in place).
    if (!packed) {
#pragma omp parallel for if (entries * d > kParallelMinElements)
      for (int64_t e = 0; e < entries; ++e) std::copy_n(x + row_of[e] * d, d, xg + e * d);
    }
    // One GEMM per non-empty block: h = x_rows @ W_b^T + bias_b.
    auto block = [&](int64_t b) {
      const int64_t first = start_[b], count = start_[b + 1] - first;
      if (count == 0) return;
      float* h = hg_.data() + first * size_;
      if (packed) {
        packed_gemm_rows(count, x, d, row_of + first, packed_gemm_matrix(packed_w_, b, size_, d), bias + b * size_,
                         false, h, size_);
      } else {
        linear_rows(count, xg + first * d, d, w + b * size_ * d, nullptr, size_, d, bias + b * size_, false, h, size_);
      }
    };
    // Packed blocks go one per task over the threads: each block's weights are
    // then read once, by one thread. (dnnl_sgemm splits its own work.)
    if (packed && packed_gemm_worth_splitting(entries * d * size_)) {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t b = 0; b < blocks_; ++b) block(b);
    } else {
      for (int64_t b = 0; b < blocks_; ++b) block(b);
    }
    scatter_output(out.data<float>());
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy_t, const InputGrads& din, RunContext&) override {
    check(!dhg_.empty() || rows_ * top_k_ == 0, "block_gated_linear backward needs the kernel prepared for training");
    const float* x = in[0]->data<float>();
    const float* w = in[1]->data<float>();
    const float* dy = dy_t.data<float>();
    const int64_t S = size_, k = top_k_;
    // Per entry: dh = g * dy over the block's columns, and dL/dg = dy . h;
    // then per row the softmax's backward gives the kept scores' gradient:
    // g_j = k p_j, so dL/ds_j = g_j * (dL/dg_j - sum_i p_i dL/dg_i).
#pragma omp parallel for if (rows_ * k * S > kParallelMinElements)
    for (int64_t n = 0; n < rows_; ++n) {
      float* ds = dscores_.data() + n * blocks_;
      std::fill(ds, ds + blocks_, 0.0f);
      double* dg = dg_.data() + n * k;
      double mean = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = pos_[n * k + j], b = chosen_[n * k + j];
        const float g = g_[n * k + j];
        const float* dyb = dy + n * out_ + b * S;
        const float* h = hg_.data() + e * S;
        float* dh = dhg_.data() + e * S;
        double dot = 0.0;
        for (int64_t i = 0; i < S; ++i) {
          dh[i] = g * dyb[i];
          dot += static_cast<double>(dyb[i]) * h[i];
        }
        dg[j] = dot;
        mean += dot * g / static_cast<double>(k);
      }
      for (int64_t j = 0; j < k; ++j) ds[chosen_[n * k + j]] = static_cast<float>(g_[n * k + j] * (dg[j] - mean));
    }
    if (din[2]) {
      float* db = din[2]->data<float>();
      std::fill(db, db + out_, 0.0f);
      for (int64_t b = 0; b < blocks_; ++b)
        for (int64_t e = start_[b]; e < start_[b + 1]; ++e)
          for (int64_t i = 0; i < S; ++i) db[b * S + i] += dhg_[e * S + i];
    }
    if (din[1]) {
      // dW_b = dh_b^T @ x_rows; a block no row chose gets zero.
      float* dw = din[1]->data<float>();
      for (int64_t b = 0; b < blocks_; ++b) {
        const int64_t first = start_[b], count = start_[b + 1] - first;
        float* dwb = dw + b * S * in_;
        if (count == 0) {
          std::fill(dwb, dwb + S * in_, 0.0f);
          continue;
        }
        sgemm('T', 'N', S, in_, count, dhg_.data() + first * S, S, xg_.data() + first * in_, in_, 0.0f, dwb, in_);
      }
    }
    if (din[3]) sgemm('T', 'N', blocks_, in_, rows_, dscores_.data(), blocks_, x, in_, 0.0f, din[3]->data<float>(), in_);
    if (din[0]) {
      float* dx = din[0]->data<float>();
      sgemm('N', 'N', rows_, in_, blocks_, dscores_.data(), blocks_, in[3]->data<float>(), in_, 0.0f, dx, in_);
      for (int64_t b = 0; b < blocks_; ++b) {
        const int64_t first = start_[b], count = start_[b + 1] - first;
        if (count > 0)
          sgemm('N', 'N', count, in_, S, dhg_.data() + first * S, S, w + b * S * in_, in_, 0.0f,
                dxg_.data() + first * in_, in_);
      }
      // Each row adds its top_k entries, in slot order: the same sum on any thread count.
      const int64_t d = in_;
      const float* dxg = dxg_.data();
      const int64_t* pos = pos_.data();
#pragma omp parallel for if (rows_ * k * d > kParallelMinElements)
      for (int64_t n = 0; n < rows_; ++n)
        for (int64_t j = 0; j < k; ++j) {
          const float* src = dxg + pos[n * k + j] * d;
          float* dst = dx + n * d;
          for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
        }
    }
  }

  // In a compiled Plan: each block's weights and the gate's packed once (shared by every copy of the plan).
  void freeze_params(const Inputs& params, const MakeShared& shared) override {
    const int64_t blocks = blocks_, size = size_, d = in_;
    if (const Tensor* w = params[1])
      packed_w_ = shared(*w, pack_gemm_kind(blocks, size, d),
                         [=] { return pack_gemm_stack(w->data<float>(), blocks, size, d); });
    if (const Tensor* gw = params[3])
      packed_gate_ = shared(*gw, pack_gemm_kind(1, blocks, d),
                            [=] { return pack_gemm_stack(gw->data<float>(), 1, blocks, d); });
  }

  double flops(const std::vector<Shape>& in, const Shape&) const override {
    const double rows = static_cast<double>(in[0][0]), d = static_cast<double>(in[0][1]);
    const double size = static_cast<double>(in[1][0] / blocks_);
    return 2.0 * rows * d * (static_cast<double>(blocks_) + static_cast<double>(top_k_) * size);
  }

 private:
  // Per row: the top_k blocks in increasing block order and their scales g.
  // Block b is kept when fewer than top_k blocks beat it (a higher score, or
  // the same score and a lower index): exactly top_k are kept, even with ties.
  void choose_blocks() {
    const int64_t B = blocks_, k = top_k_;
    for (int64_t n = 0; n < rows_; ++n) {
      const float* s = scores_.data() + n * B;
      int64_t* chosen = chosen_.data() + n * k;
      float* g = g_.data() + n * k;
      int64_t kept = 0;
      float top = -INFINITY;
      for (int64_t b = 0; b < B; ++b) {
        if (!std::isfinite(s[b]))
          throw Error("block_gated_linear: a gate score is not finite; training diverged, lower the learning rate");
        int64_t beaten_by = 0;
        for (int64_t o = 0; o < B; ++o) beaten_by += s[o] > s[b] || (s[o] == s[b] && o < b);
        if (beaten_by < k) {
          chosen[kept++] = b;
          top = std::max(top, s[b]);
        }
      }
      double sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(s[chosen[j]]) - top);
      for (int64_t j = 0; j < k; ++j)
        g[j] = static_cast<float>(static_cast<double>(k) * std::exp(static_cast<double>(s[chosen[j]]) - top) / sum);
    }
  }

  // Counting sort of the (row, slot) entries by block: block b's entries are
  // start_[b] .. start_[b + 1] - 1, rows ascending; pos_ maps (row, slot) to
  // its entry and row_of_ maps an entry back to its row.
  void group_by_block() {
    const int64_t k = top_k_, entries = rows_ * k;
    std::fill(start_.begin(), start_.end(), 0);
    for (int64_t e = 0; e < entries; ++e) ++start_[chosen_[e] + 1];
    for (int64_t b = 0; b < blocks_; ++b) start_[b + 1] += start_[b];
    std::copy_n(start_.begin(), blocks_, fill_.begin());
    for (int64_t n = 0; n < rows_; ++n)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = fill_[chosen_[n * k + j]]++;
        pos_[n * k + j] = e;
        row_of_[e] = n;
      }
  }

  // y = 0, then each row's kept blocks: g * h.
  void scatter_output(float* y) const {
    const int64_t k = top_k_, S = size_, C = out_;
#pragma omp parallel for if (rows_ * C > kParallelMinElements)
    for (int64_t n = 0; n < rows_; ++n) {
      float* yn = y + n * C;
      std::fill(yn, yn + C, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const float g = g_[n * k + j];
        const float* h = hg_.data() + pos_[n * k + j] * S;
        float* yb = yn + chosen_[n * k + j] * S;
        for (int64_t i = 0; i < S; ++i) yb[i] = g * h[i];
      }
    }
  }

  int64_t blocks_, top_k_;
  int64_t rows_ = 0, in_ = 0, out_ = 0, size_ = 0;
  std::vector<float> scores_;         // [N, B]
  std::vector<int64_t> chosen_;       // [N, top_k] kept blocks, ascending
  std::vector<float> g_;              // [N, top_k] their scales
  std::vector<int64_t> pos_;          // [N, top_k] -> entry in block order
  std::vector<int64_t> row_of_;       // entry -> row
  std::vector<int64_t> start_, fill_; // counting-sort offsets per block
  std::vector<float> xg_, hg_;        // per entry: gathered x row [D], pre-gate output h [S]
  std::vector<float> dhg_, dxg_;      // training: per entry g * dy [S], its x gradient [D]
  std::vector<float> dscores_;        // training: [N, B]
  std::vector<double> dg_;            // training: [N, top_k] dL/dg
  Tensor packed_w_, packed_gate_;     // in a compiled Plan: gemm panels per block, and the gate's
};

}  // namespace

void register_block_gated_linear_ops() {
  register_op({"block_gated_linear", 4, 4, [](int) { return true; },
               [](const Node& n) { return std::make_unique<BlockGatedLinearKernel>(n); }});
}

}  // namespace leanai
