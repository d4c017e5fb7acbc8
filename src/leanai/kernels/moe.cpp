// moe: a DeepSeekMoE-style Mixture-of-Experts layer (fine-grained routed
// experts plus always-on shared experts) with DeepSeek-V3's routing and
// auxiliary-loss-free load balancing.
//
// Inputs, in order (13, or 9 without shared experts: the four shared inputs
// are then absent, not zero-sized):
//   x [N, D]
//   router [E, D]
//   w1 [E, H, D], b1 [E, H], w2 [E, D, H], b2 [E, D]     routed experts: D -> H -> ReLU -> D
//   sw1 [SH, D], sb1 [SH], sw2 [D, SH], sb2 [D]           shared experts, fused into one MLP of width SH = S * H
//   bias [E]           buffer: routing bias (steers the choice, not the gates)
//   load [E]           buffer: fraction of tokens that chose each expert in the last training batch
//   balance_loss [1]   buffer: the balance loss of the last training batch (0 when it is off)
// Attributes: top_k (default 2), affinity "softmax" | "sigmoid" (default "sigmoid"),
//   bias_update_speed (default 0.001), balance_loss_weight (default 0: off),
//   capacity_factor (default 0: no limit; see moe_grouping.h).
//
//   y = shared(x) + sum over the token's kept experts e of g_e * expert_e(x)
// (no residual: add one in the graph when wanted).
//
// With sigmoid affinity and top_k 1 the one gate is s / s = 1: the router then
// gets no gradient through the gates (only through the balance loss).
//
// In training, after routing, the forward nudges `bias` (moe_balance.h) and
// writes `load` and `balance_loss`. The op has one output, so the balance
// loss is not part of it: backward adds its gradient to the router's and x's,
// as if the loss were added to whatever the output feeds.
//
// Execution: the router is one GEMM; the chosen (token, expert) pairs are
// grouped by expert with a counting sort (moe_grouping.h); each expert runs
// its tokens as one GEMM per layer. The block sizes change every batch, which
// fixed-shape primitives cannot follow, so: in training, dnnl_sgemm on the
// expert's tokens gathered into one contiguous block; in a compiled Plan,
// whose weights stay fixed, the packed small-M kernel of packed_gemm.h on
// weights packed once, reading the tokens in place. The outputs are scaled by
// the gates and added back per token, in slot order, so a token's result does
// not depend on where it sits in the batch (in a compiled Plan, up to the last
// bits: the packed kernel sums a row in another order when it falls in a
// tile's tail). Every buffer is sized in prepare.
#include <algorithm>
#include <cstring>

#include "leanai/core/error.h"
#include "leanai/core/parallel.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/packed_gemm.h"
#include "leanai/kernels/sgemm.h"
#include "leanai/sparse/moe_balance.h"
#include "leanai/sparse/moe_grouping.h"
#include "leanai/sparse/moe_routing.h"

namespace leanai {
namespace {

// out[c] = sum over rows of a[r, c] (overwrites out).
void column_sums(const float* a, int64_t rows, int64_t cols, float* out) {
  std::fill(out, out + cols, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c] += a[r * cols + c];
}

// d *= (h > 0): ReLU's backward, from its output h.
void relu_mask(float* d, const float* h, int64_t n) {
  for_chunks(n, [d, h](int64_t begin, int64_t end) {
    float* __restrict dp = d;
    const float* __restrict hp = h;
    for (int64_t i = begin; i < end; ++i) dp[i] = hp[i] > 0.0f ? dp[i] : 0.0f;
  });
}

float* f(const Tensor* t) { return t->data<float>(); }

class MoeKernel : public OpKernel {
 public:
  explicit MoeKernel(const Node& n)
      : top_k_(attr_int(n, "top_k", 2)),
        affinity_(parse_affinity(attr_string(n, "affinity", "sigmoid"))),
        bias_speed_(attr_float(n, "bias_update_speed", 0.001)),
        balance_weight_(attr_float(n, "balance_loss_weight", 0.0)),
        capacity_factor_(attr_float(n, "capacity_factor", 0.0)) {
    check(top_k_ >= 1, "moe: top_k must be >= 1");
    check(bias_speed_ >= 0.0, "moe: bias_update_speed must be >= 0");
    check(balance_weight_ >= 0.0, "moe: balance_loss_weight must be >= 0");
    check(capacity_factor_ >= 0.0, "moe: capacity_factor must be >= 0 (0 = no limit)");
  }

  Shape prepare(const std::vector<Shape>& in, bool training) override {
    check(in.size() == 9 || in.size() == 13,
          "moe takes 13 inputs (x, router, w1, b1, w2, b2, sw1, sb1, sw2, sb2, bias, load, balance_loss) "
          "or 9 without shared experts, got " + std::to_string(in.size()));
    shared_ = in.size() == 13;
    const Shape& x = in[0];
    check(x.size() == 2, "moe expects input [tokens, features], got " + shape_str(x) + "; flatten it first");
    N_ = x[0];
    D_ = x[1];
    check(in[1].size() == 2 && in[1][1] == D_, "moe: router must be [experts, " + std::to_string(D_) + "], got " + shape_str(in[1]));
    E_ = in[1][0];
    check(E_ >= 1, "moe: needs at least one routed expert");
    check(top_k_ <= E_, "moe: top_k " + std::to_string(top_k_) + " is more than the " + std::to_string(E_) + " experts");
    check(in[2].size() == 3 && in[2][0] == E_ && in[2][2] == D_,
          "moe: w1 must be [experts, hidden, features] = [" + std::to_string(E_) + ", H, " + std::to_string(D_) + "], got " + shape_str(in[2]));
    H_ = in[2][1];
    auto expect = [&](int i, const Shape& want, const std::string& name) {
      check(in[i] == want, "moe: " + name + " must be " + shape_str(want) + ", got " + shape_str(in[i]));
    };
    expect(3, {E_, H_}, "b1");
    expect(4, {E_, D_, H_}, "w2");
    expect(5, {E_, D_}, "b2");
    SH_ = 0;
    if (shared_) {
      check(in[6].size() == 2 && in[6][0] >= 1 && in[6][1] == D_,
            "moe: sw1 must be [shared hidden, " + std::to_string(D_) + "], got " + shape_str(in[6]) +
                " (leave the four shared inputs out for no shared experts)");
      SH_ = in[6][0];
      expect(7, {SH_}, "sb1");
      expect(8, {D_, SH_}, "sw2");
      expect(9, {D_}, "sb2");
    }
    const int b = shared_ ? 10 : 6;
    expect(b, {E_}, "bias");
    expect(b + 1, {E_}, "load");
    expect(b + 2, {1}, "balance_loss");

    training_ = training;
    packed_ = {};  // new shapes: packed weights, if any, are stale
    routing_.resize(N_, E_, top_k_);
    capacity_ = expert_capacity(capacity_factor_, N_, E_, top_k_);
    const int64_t rows = N_ * top_k_;
    xg_.resize(rows * D_);
    token_of_.resize(rows);
    hg_.resize(rows * H_);
    og_.resize(rows * D_);
    hs_.resize(N_ * SH_);
    if (training) {
      dgate_.resize(rows);
      dlogits_.resize(N_ * E_);
      dog_.resize(rows * D_);
      dhg_.resize(rows * H_);
      dhs_.resize(N_ * SH_);
    }
    return x;
  }

  void forward(const Inputs& in, Tensor& y_out, RunContext&) override {
    const float* x = f(in[0]);
    float* y = y_out.data<float>();
    route(x, f(in[1]), f(in[bias_index()]));
    if (shared_) {
      linear_rows(N_, x, D_, f(in[6]), packed(packed_.sw1, 0, SH_, D_), SH_, D_, f(in[7]), true, hs_.data(), SH_);
      linear_rows(N_, hs_.data(), SH_, f(in[8]), packed(packed_.sw2, 0, D_, SH_), D_, SH_, f(in[9]), false, y, D_);
    } else {
      std::fill(y, y + N_ * D_, 0.0f);
    }
    run_experts(x, f(in[2]), f(in[3]), f(in[4]), f(in[5]));
    add_expert_outputs(y);
    if (!training_) return;
    const int b = bias_index();
    expert_load(routing_, f(in[b + 1]));
    f(in[b + 2])[0] = static_cast<float>(balance_loss(routing_, affinity_, balance_weight_));
    update_routing_bias(routing_, bias_speed_, f(in[b]));  // last: this batch was routed with the old bias
  }

  void backward(const Inputs& in, const Tensor&, const Tensor& dy_t, const InputGrads& din, RunContext&) override {
    check(training_, "moe backward needs the kernel prepared for training");
    const float* x = f(in[0]);
    const float* dy = dy_t.data<float>();
    float* dx = din[0] ? f(din[0]) : nullptr;
    expert_backward(in, dy, din);  // also sets dgate_ and, when dx, starts it with the experts' share
    if (shared_) shared_backward(in, x, dy, din, dx != nullptr);
    // Router: through the gates (and the balance loss) to the logits, then x @ router^T's backward.
    gate_backward(routing_, affinity_, dgate_.data(), dlogits_.data());
    add_balance_loss_grad(routing_, affinity_, balance_weight_, dlogits_.data());
    if (din[1]) sgemm('T', 'N', E_, D_, N_, dlogits_.data(), E_, x, D_, 0.0f, f(din[1]), D_);
    if (dx) sgemm('N', 'N', N_, D_, E_, dlogits_.data(), E_, f(in[1]), D_, 1.0f, dx, D_);
    // The buffers take no gradient; should one be made trainable, it gets zeros.
    for (size_t i = bias_index(); i < din.size(); ++i)
      if (din[i]) din[i]->fill(0.0f);
  }

  // In a compiled Plan: the router's and the experts' weights packed once for
  // the small-M kernel (shared by every copy of the plan).
  void freeze_params(const Inputs& params, const MakeShared& shared) override {
    const int64_t E = E_, D = D_, H = H_, SH = SH_;
    auto pack = [&](int i, int64_t count, int64_t n, int64_t k) {
      const Tensor* w = params[i];
      if (!w) return Tensor();
      return shared(*w, pack_gemm_kind(count, n, k), [=] { return pack_gemm_stack(w->data<float>(), count, n, k); });
    };
    packed_.router = pack(1, 1, E, D);
    packed_.w1 = pack(2, E, H, D);
    packed_.w2 = pack(4, E, D, H);
    if (shared_) {
      packed_.sw1 = pack(6, 1, SH, D);
      packed_.sw2 = pack(8, 1, D, SH);
    }
  }

  // Active FLOPs: the router, the shared experts and top_k routed experts per token.
  double flops(const std::vector<Shape>& in, const Shape&) const override {
    const double n = static_cast<double>(in[0][0]), d = static_cast<double>(D_);
    return n * (2.0 * d * E_ + 4.0 * d * SH_ + 4.0 * d * H_ * top_k_);
  }

 private:
  int bias_index() const { return shared_ ? 10 : 6; }

  // Matrix e [n, k] of a packed stack, or null when not packed (linear_rows then uses dnnl_sgemm).
  static const float* packed(const Tensor& stack, int64_t e, int64_t n, int64_t k) {
    return stack.defined() ? packed_gemm_matrix(stack, e, n, k).strips : nullptr;
  }

  // Logits, affinities, the top-k choice and the grouping by expert.
  void route(const float* x, const float* router, const float* bias) {
    linear_rows(N_, x, D_, router, packed(packed_.router, 0, E_, D_), E_, D_, nullptr, false, routing_.affinity.data(), E_);
    apply_affinity(routing_, affinity_);
    choose_experts(routing_, bias, affinity_);
    group_by_expert(routing_, capacity_);
  }

  // Gathers each expert's tokens into rows of xg_, then two GEMMs per expert:
  // hg_ = relu(xg_ w1_e^T + b1_e), og_ = hg_ w2_e^T + b2_e.
  void run_experts(const float* x, const float* w1, const float* b1, const float* w2, const float* b2) {
    const int64_t rows = routing_.pairs(), k = top_k_, D = D_;
    const int32_t* pair = routing_.pair.data();
    const bool packed_w1 = packed_.w1.defined();
    // The packed kernel reads each expert's tokens in place, by index;
    // dnnl_sgemm needs them copied together (xg_, also kept for backward).
    if (packed_w1) {
      for (int64_t q = 0; q < rows; ++q) token_of_[q] = pair[q] / k;
    } else {
      float* xg = xg_.data();
#pragma omp parallel for if (rows * D > kParallelMinElements)
      for (int64_t q = 0; q < rows; ++q) std::memcpy(xg + q * D, x + (pair[q] / k) * D, D * sizeof(float));
    }
    auto expert = [&](int64_t e) {
      const int64_t m = routing_.kept[e], q0 = routing_.begin[e];
      if (m == 0) return;
      float* h = hg_.data() + q0 * H_;
      float* o = og_.data() + q0 * D_;
      if (packed_w1)
        packed_gemm_rows(m, x, D_, token_of_.data() + q0, packed_gemm_matrix(packed_.w1, e, H_, D_), b1 + e * H_, true,
                         h, H_);
      else
        linear_rows(m, xg_.data() + q0 * D_, D_, w1 + e * H_ * D_, nullptr, H_, D_, b1 + e * H_, true, h, H_);
      linear_rows(m, h, H_, w2 + e * D_ * H_, packed(packed_.w2, e, D_, H_), D_, H_, b2 + e * D_, false, o, D_);
    };
    // Packed experts go one per task over the threads: each GEMM is too small
    // to split well, and on its own thread each expert's weights are read once.
    // (dnnl_sgemm splits its own work, so unpacked experts run in turn.)
    if (packed_.w1.defined() && packed_.w2.defined() && packed_gemm_worth_splitting(rows * 2 * D_ * H_)) {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t e = 0; e < E_; ++e) expert(e);
    } else {
      for (int64_t e = 0; e < E_; ++e) expert(e);
    }
  }

  // y[t] += g * og_[row] over the token's kept pairs, per token (no races, fixed order).
  void add_expert_outputs(float* y) {
    const int64_t k = top_k_, D = D_;
    const int32_t* row = routing_.row.data();
    const float* gate = routing_.gate.data();
    const float* og = og_.data();
#pragma omp parallel for if (N_ * k * D > kParallelMinElements)
    for (int64_t t = 0; t < N_; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const int32_t q = row[t * k + j];
        if (q < 0) continue;
        const float g = gate[t * k + j];
        for (int64_t i = 0; i < D; ++i) y[t * D + i] += g * og[q * D + i];
      }
  }

  // Routed experts' backward: dgate_, the expert weight gradients and, when
  // dx is wanted, dx = the experts' share (later terms add to it).
  void expert_backward(const Inputs& in, const float* dy, const InputGrads& din) {
    const int64_t k = top_k_, D = D_, H = H_;
    const int32_t* row = routing_.row.data();
    const float* gate = routing_.gate.data();
    const float* og = og_.data();
    float* dgate = dgate_.data();
    float* dog = dog_.data();
    // Per pair: dgate = <dy_t, og_row>, dog_row = g * dy_t.
#pragma omp parallel for if (N_ * k * D > kParallelMinElements)
    for (int64_t t = 0; t < N_; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const int32_t q = row[t * k + j];
        float acc = 0.0f;
        if (q >= 0) {
          const float g = gate[t * k + j];
          for (int64_t i = 0; i < D; ++i) {
            acc += dy[t * D + i] * og[q * D + i];
            dog[q * D + i] = g * dy[t * D + i];
          }
        }
        dgate[t * k + j] = acc;
      }
    const float* w1 = f(in[2]);
    const float* w2 = f(in[4]);
    float* dw1 = din[2] ? f(din[2]) : nullptr;
    float* db1 = din[3] ? f(din[3]) : nullptr;
    float* dw2 = din[4] ? f(din[4]) : nullptr;
    float* db2 = din[5] ? f(din[5]) : nullptr;
    const bool need_dx = din[0] != nullptr;
    for (int64_t e = 0; e < E_; ++e) {
      const int64_t m = routing_.kept[e], q0 = routing_.begin[e];
      if (m == 0) {  // no tokens: no gradient, but it must still be written
        if (dw1) std::fill(dw1 + e * H * D, dw1 + (e + 1) * H * D, 0.0f);
        if (db1) std::fill(db1 + e * H, db1 + (e + 1) * H, 0.0f);
        if (dw2) std::fill(dw2 + e * D * H, dw2 + (e + 1) * D * H, 0.0f);
        if (db2) std::fill(db2 + e * D, db2 + (e + 1) * D, 0.0f);
        continue;
      }
      float* dO = dog + q0 * D;
      const float* h = hg_.data() + q0 * H;
      const float* xg = xg_.data() + q0 * D;
      float* dh = dhg_.data() + q0 * H;
      if (dw2) sgemm('T', 'N', D, H, m, dO, D, h, H, 0.0f, dw2 + e * D * H, H);
      if (db2) column_sums(dO, m, D, db2 + e * D);
      if (!dw1 && !db1 && !need_dx) continue;
      sgemm('N', 'N', m, H, D, dO, D, w2 + e * D * H, H, 0.0f, dh, H);
      relu_mask(dh, h, m * H);
      if (dw1) sgemm('T', 'N', H, D, m, dh, H, xg, D, 0.0f, dw1 + e * H * D, D);
      if (db1) column_sums(dh, m, H, db1 + e * H);
      // dO is spent: its rows take the gathered dx.
      if (need_dx) sgemm('N', 'N', m, D, H, dh, H, w1 + e * H * D, D, 0.0f, dO, D);
    }
    if (!need_dx) return;
    float* dx = f(din[0]);
#pragma omp parallel for if (N_ * k * D > kParallelMinElements)
    for (int64_t t = 0; t < N_; ++t) {
      float* dxt = dx + t * D;
      std::fill(dxt, dxt + D, 0.0f);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t q = row[t * k + j];
        if (q < 0) continue;
        for (int64_t i = 0; i < D; ++i) dxt[i] += dog[q * D + i];
      }
    }
  }

  // The shared MLP's backward; adds its share to dx (already written).
  void shared_backward(const Inputs& in, const float* x, const float* dy, const InputGrads& din, bool need_dx) {
    if (din[8]) sgemm('T', 'N', D_, SH_, N_, dy, D_, hs_.data(), SH_, 0.0f, f(din[8]), SH_);
    if (din[9]) column_sums(dy, N_, D_, f(din[9]));
    if (!din[6] && !din[7] && !need_dx) return;
    float* dh = dhs_.data();
    sgemm('N', 'N', N_, SH_, D_, dy, D_, f(in[8]), SH_, 0.0f, dh, SH_);
    relu_mask(dh, hs_.data(), N_ * SH_);
    if (din[6]) sgemm('T', 'N', SH_, D_, N_, dh, SH_, x, D_, 0.0f, f(din[6]), D_);
    if (din[7]) column_sums(dh, N_, SH_, f(din[7]));
    if (need_dx) sgemm('N', 'N', N_, D_, SH_, dh, SH_, f(in[6]), D_, 1.0f, f(din[0]), D_);
  }

  int64_t top_k_;
  Affinity affinity_;
  double bias_speed_, balance_weight_, capacity_factor_;
  bool shared_ = false, training_ = false;
  int64_t N_ = 0, D_ = 0, E_ = 0, H_ = 0, SH_ = 0, capacity_ = 0;
  MoeRouting routing_;
  struct {
    Tensor router, w1, w2, sw1, sw2;  // undefined unless frozen
  } packed_;
  // Rows grouped by expert (routing_.pair order), N * top_k of each.
  std::vector<float> xg_, hg_, og_, dog_, dhg_;
  std::vector<int64_t> token_of_;        // packed path: the token each grouped row reads
  std::vector<float> hs_, dhs_;          // shared hidden [N, SH] and its gradient
  std::vector<float> dgate_, dlogits_;   // [N, top_k], [N, E]
};

}  // namespace

void register_moe_ops() {
  register_op({"moe", 9, 13, [](int i) { return i < 10; }, [](const Node& n) { return std::make_unique<MoeKernel>(n); }});
}

}  // namespace leanai
