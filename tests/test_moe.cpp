// Mixture-of-Experts: routing, grouping and capacity on their own; then the
// moe op's properties that test_ops' reference comparison does not cover
// (gradients stay within the chosen experts, order independence, buffers,
// the balance loss, load balancing by the routing bias, training to high
// accuracy), and the builder and spec layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "expect_error.h"
#include "graph_fixtures.h"
#include "leanai/data/dataset.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/passes/compact_gates.h"
#include "leanai/nn/model_builder.h"
#include "leanai/nn/models.h"
#include "leanai/nn/trainer.h"
#include "leanai/core/threads.h"
#include "leanai/runtime/plan.h"
#include "leanai/sparse/moe_balance.h"
#include "leanai/sparse/moe_grouping.h"
#include "leanai/sparse/moe_routing.h"
#include "temp_dir.h"

namespace leanai {
namespace {

using test_support::expect_error;

Tensor normal_tensor(const Shape& s, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale * rng.normal();
  return t;
}

// A routing of `tokens` random tokens (logits N(0, 1), bias N(0, 0.1)).
MoeRouting random_routing(int64_t tokens, int64_t experts, int64_t top_k, Affinity affinity, uint64_t seed,
                          std::vector<float>* bias_out = nullptr) {
  MoeRouting r;
  r.resize(tokens, experts, top_k);
  Rng rng(seed);
  for (float& z : r.affinity) z = rng.normal();
  std::vector<float> bias(experts);
  for (float& b : bias) b = 0.1f * rng.normal();
  apply_affinity(r, affinity);
  choose_experts(r, bias.data(), affinity);
  if (bias_out) *bias_out = bias;
  return r;
}

// ---------------------------------------------------------------------------
// Routing and grouping
// ---------------------------------------------------------------------------

TEST(MoeRouting, EveryTokenUsesExactlyTopKBestExperts) {
  for (Affinity a : {Affinity::softmax, Affinity::sigmoid})
    for (int64_t k : {1, 2, 3, 8}) {
      std::vector<float> bias;
      MoeRouting r = random_routing(200, 8, k, a, 11 + k, &bias);
      for (int64_t t = 0; t < r.tokens; ++t) {
        const float* s = r.affinity.data() + t * 8;
        std::set<int32_t> chosen(r.expert.begin() + t * k, r.expert.begin() + (t + 1) * k);
        ASSERT_EQ(static_cast<int64_t>(chosen.size()), k) << "token " << t << " chose an expert twice";
        // No unchosen expert beats a chosen one on s + bias.
        float worst_chosen = INFINITY, best_other = -INFINITY;
        for (int64_t e = 0; e < 8; ++e) {
          const float v = s[e] + bias[e];
          if (chosen.count(static_cast<int32_t>(e)))
            worst_chosen = std::min(worst_chosen, v);
          else
            best_other = std::max(best_other, v);
        }
        EXPECT_GE(worst_chosen, best_other);
        // Gates: s itself (softmax) or s normalized over the chosen (sigmoid).
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += s[r.expert[t * k + j]];
        for (int64_t j = 0; j < k; ++j) {
          const double s_e = s[r.expert[t * k + j]];
          EXPECT_NEAR(r.gate[t * k + j], a == Affinity::softmax ? s_e : s_e / sum, 1e-6);
        }
      }
    }
}

TEST(MoeRouting, BiasSteersTheChoiceButNotTheGates) {
  MoeRouting r;
  r.resize(1, 4, 1);
  r.affinity = {0.0f, 1.0f, 2.0f, 3.0f};
  apply_affinity(r, Affinity::softmax);
  const std::vector<float> bias = {5.0f, 0.0f, 0.0f, 0.0f};  // expert 0 has the lowest affinity
  choose_experts(r, bias.data(), Affinity::softmax);
  EXPECT_EQ(r.expert[0], 0);
  EXPECT_NEAR(r.gate[0], r.affinity[0], 1e-7);  // the gate is s_0, not s_0 + 5
}

TEST(MoeRouting, AffinitiesAreSoftmaxOrSigmoid) {
  MoeRouting r;
  r.resize(1, 3, 1);
  r.affinity = {1.0f, -2.0f, 0.5f};
  apply_affinity(r, Affinity::sigmoid);
  EXPECT_NEAR(r.affinity[1], 1.0 / (1.0 + std::exp(2.0)), 1e-6);
  r.affinity = {1000.0f, 999.0f, -1000.0f};  // softmax must not overflow
  apply_affinity(r, Affinity::softmax);
  EXPECT_NEAR(r.affinity[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(r.affinity[0] + r.affinity[1] + r.affinity[2], 1.0, 1e-6);
  expect_error([] { parse_affinity("tanh"); }, {"tanh", "softmax", "sigmoid"});
}

TEST(MoeGrouping, CountingSortVisitsEveryPairExactlyOnce) {
  MoeRouting r = random_routing(300, 16, 3, Affinity::sigmoid, 5);
  group_by_expert(r, expert_capacity(0.0, 300, 16, 3));
  std::vector<int> seen(r.pairs(), 0);
  int64_t total = 0;
  for (int64_t e = 0; e < 16; ++e) {
    EXPECT_EQ(r.kept[e], r.chosen[e]) << "no capacity: nothing may drop";
    EXPECT_EQ(r.begin[e + 1] - r.begin[e], r.chosen[e]);
    total += r.chosen[e];
    for (int64_t q = r.begin[e]; q < r.begin[e + 1]; ++q) {
      const int32_t p = r.pair[q];
      seen[p]++;
      EXPECT_EQ(r.expert[p], e) << "pair in the wrong expert's block";
      EXPECT_EQ(r.row[p], q);
      if (q > r.begin[e]) {
        EXPECT_LT(r.pair[q - 1], p) << "a block keeps token order";
      }
    }
  }
  EXPECT_EQ(total, r.pairs());
  for (int64_t p = 0; p < r.pairs(); ++p) EXPECT_EQ(seen[p], 1) << "pair " << p;
}

TEST(MoeGrouping, CapacityIsRespectedAndKeepsTheHighestAffinity) {
  EXPECT_EQ(expert_capacity(0.0, 100, 8, 2), 100);
  EXPECT_EQ(expert_capacity(1.0, 100, 8, 2), 25);
  EXPECT_EQ(expert_capacity(1.25, 100, 8, 2), 32);   // ceil(31.25)
  EXPECT_EQ(expert_capacity(100.0, 100, 8, 2), 100);  // never more than every token
  // Skewed routing (the bias favours expert 0), so experts overflow.
  MoeRouting r;
  r.resize(400, 8, 2);
  Rng rng(9);
  for (float& z : r.affinity) z = rng.normal();
  apply_affinity(r, Affinity::softmax);
  std::vector<float> bias = {1.0f, 0.5f, 0, 0, 0, 0, 0, 0};
  choose_experts(r, bias.data(), Affinity::softmax);
  const int64_t cap = expert_capacity(1.0, 400, 8, 2);
  group_by_expert(r, cap);
  int64_t dropped = 0;
  for (int64_t e = 0; e < 8; ++e) {
    EXPECT_LE(r.kept[e], cap);
    EXPECT_EQ(r.kept[e], std::min(r.chosen[e], cap));
    // Every kept pair's affinity for e is at least every dropped one's.
    float min_kept = INFINITY, max_dropped = -INFINITY;
    for (int64_t q = r.begin[e]; q < r.begin[e + 1]; ++q) {
      const int32_t p = r.pair[q];
      const float s = r.affinity[(p / 2) * 8 + e];
      if (r.row[p] >= 0) {
        EXPECT_LT(q, r.begin[e] + r.kept[e]);
        min_kept = std::min(min_kept, s);
      } else {
        max_dropped = std::max(max_dropped, s);
        ++dropped;
      }
    }
    if (r.kept[e] < r.chosen[e]) {
      EXPECT_GE(min_kept, max_dropped) << "expert " << e;
    }
  }
  EXPECT_GT(dropped, 0) << "the skewed routing should overflow expert 0";
  EXPECT_GT(r.chosen[0], cap);
}

TEST(MoeBalance, LoadAndBiasUpdate) {
  MoeRouting r;
  r.resize(4, 4, 1);
  r.expert = {0, 0, 0, 1};  // expert 0 overloaded, 1 balanced, 2 and 3 idle
  r.affinity.assign(16, 0.25f);
  group_by_expert(r, 4);
  std::vector<float> load(4), bias(4, 0.0f);
  expert_load(r, load.data());
  EXPECT_EQ(load, (std::vector<float>{0.75f, 0.25f, 0.0f, 0.0f}));
  update_routing_bias(r, 0.01, bias.data());
  EXPECT_EQ(bias, (std::vector<float>{-0.01f, 0.0f, 0.01f, 0.01f}));
  // Balance loss: alpha * E * sum_e f_e P_e with f = (3/4, 1/4, 0, 0), P = 1/4 each -> alpha.
  EXPECT_NEAR(balance_loss(r, Affinity::softmax, 0.5), 0.5, 1e-6);
  EXPECT_EQ(balance_loss(r, Affinity::softmax, 0.0), 0.0);
}

// ---------------------------------------------------------------------------
// The op in a graph
// ---------------------------------------------------------------------------

struct MoeSetup {
  int64_t D = 6, E = 6, H = 4, SH = 4, top_k = 2;
  std::string affinity = "softmax";
  double bias_speed = 0.0, alpha = 0.0, capacity = 0.0;
};

// x -> moe, parameters random (seed), buffers zero.
Graph moe_graph(const MoeSetup& s, uint64_t seed) {
  Graph g;
  int x = g.add_input("x", {s.D});
  std::vector<int> ids = {x};
  auto p = [&](const std::string& name, const Shape& shape, float scale) {
    ids.push_back(g.add_param(name, normal_tensor(shape, seed + ids.size(), scale)));
  };
  p("router", {s.E, s.D}, 1.0f);
  p("w1", {s.E, s.H, s.D}, 0.5f);
  p("b1", {s.E, s.H}, 0.5f);
  p("w2", {s.E, s.D, s.H}, 0.5f);
  p("b2", {s.E, s.D}, 0.5f);
  if (s.SH > 0) {
    p("sw1", {s.SH, s.D}, 0.5f);
    p("sb1", {s.SH}, 0.5f);
    p("sw2", {s.D, s.SH}, 0.5f);
    p("sb2", {s.D}, 0.5f);
  }
  ids.push_back(g.add_param("bias", Tensor::zeros({s.E}), false));
  ids.push_back(g.add_param("load", Tensor::zeros({s.E}), false));
  ids.push_back(g.add_param("balance_loss", Tensor::zeros({1}), false));
  g.set_output(g.add("moe", ids,
                     {{"top_k", s.top_k}, {"affinity", s.affinity}, {"bias_update_speed", s.bias_speed},
                      {"balance_loss_weight", s.alpha}, {"capacity_factor", s.capacity}}));
  return g;
}

// Affinities s of one token, computed here from the graph's router.
std::vector<double> affinities(const Graph& g, const float* x, int64_t D, const std::string& affinity) {
  const Tensor& router = g.params().at("router").value;
  const int64_t E = router.dim(0);
  std::vector<double> s(E);
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) {
    double z = 0;
    for (int64_t d = 0; d < D; ++d) z += static_cast<double>(x[d]) * router.data<float>()[e * D + d];
    s[e] = affinity == "softmax" ? std::exp(z) : 1 / (1 + std::exp(-z));
    sum += s[e];
  }
  if (affinity == "softmax")
    for (double& v : s) v /= sum;
  return s;
}

// The experts a token chooses: top_k by s + bias, with the bias as it is now.
std::vector<int64_t> chosen_experts(const Graph& g, const float* x, const MoeSetup& m) {
  std::vector<double> score = affinities(g, x, m.D, m.affinity);
  const Tensor& bias = g.params().at("bias").value;
  for (size_t e = 0; e < score.size(); ++e) score[e] += bias.data<float>()[e];
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  return {order.begin(), order.begin() + m.top_k};
}

TEST(MoeOp, ExpertsOutsideTheTopKGetNoGradientFromAToken) {
  MoeSetup s;
  Graph g = moe_graph(s, 3);
  Executor ex(g);
  ex.set_training(true);
  ex.set_input_grads(true);
  for (int64_t t = 0; t < 8; ++t) {  // one token per step: its gradient alone
    Tensor x = normal_tensor({1, s.D}, 100 + t);
    ex.forward({x});
    ex.backward(normal_tensor({1, s.D}, 200 + t));
    const std::vector<int64_t> chosen = chosen_experts(g, x.data<float>(), s);
    for (int64_t e = 0; e < s.E; ++e) {
      const bool used = std::find(chosen.begin(), chosen.end(), e) != chosen.end();
      for (const char* name : {"w1", "b1", "w2", "b2"}) {
        const Tensor& grad = ex.grad(name);
        const int64_t per = grad.numel() / s.E;
        double norm = 0;
        for (int64_t i = e * per; i < (e + 1) * per; ++i) norm += std::fabs(grad.data<float>()[i]);
        if (!used) {
          EXPECT_EQ(norm, 0.0) << "token " << t << ": unchosen expert " << e << " got a gradient in " << name;
        } else if (std::string(name) == "b2") {
          EXPECT_GT(norm, 0.0) << "token " << t << ": chosen expert " << e << " got no gradient in b2";
        }
      }
    }
  }
}

TEST(MoeOp, SigmoidTopOneGivesTheRouterNoGradient) {
  // g = s / s = 1: the router learns nothing through the gates (only through a balance loss).
  MoeSetup s;
  s.affinity = "sigmoid";
  s.top_k = 1;
  Graph g = moe_graph(s, 4);
  Executor ex(g);
  ex.set_training(true);
  ex.forward({normal_tensor({16, s.D}, 5)});
  ex.backward(normal_tensor({16, s.D}, 6));
  for (int64_t i = 0; i < ex.grad("router").numel(); ++i) EXPECT_EQ(ex.grad("router").data<float>()[i], 0.0f);
  // ... while softmax top-1 does.
  s.affinity = "softmax";
  Graph g2 = moe_graph(s, 4);
  Executor ex2(g2);
  ex2.set_training(true);
  ex2.forward({normal_tensor({16, s.D}, 5)});
  ex2.backward(normal_tensor({16, s.D}, 6));
  double norm = 0;
  for (int64_t i = 0; i < ex2.grad("router").numel(); ++i) norm += std::fabs(ex2.grad("router").data<float>()[i]);
  EXPECT_GT(norm, 0.0);
}

TEST(MoeOp, OutputDoesNotDependOnTokenOrder) {
  for (double capacity : {0.0, 1.0}) {
    SCOPED_TRACE("capacity " + std::to_string(capacity));
    MoeSetup s;
    s.capacity = capacity;
    Graph g = moe_graph(s, 7);
    Executor ex(g);
    const int64_t N = 97;
    Tensor x = normal_tensor({N, s.D}, 8);
    const Tensor y = ex.forward({x}).clone();
    std::vector<int64_t> perm(N);
    std::iota(perm.begin(), perm.end(), 0);
    Rng rng(1);
    for (int64_t i = N - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
    Tensor xp = Tensor::empty({N, s.D});
    for (int64_t i = 0; i < N; ++i)
      std::copy_n(x.data<float>() + perm[i] * s.D, s.D, xp.data<float>() + i * s.D);
    const Tensor& yp = ex.forward({xp});
    for (int64_t i = 0; i < N; ++i)
      for (int64_t d = 0; d < s.D; ++d)
        ASSERT_NEAR(yp.data<float>()[i * s.D + d], y.data<float>()[perm[i] * s.D + d], 1e-5f) << "row " << i;
  }
}

TEST(MoeOp, TrainingWritesBuffersAndEvalLeavesThemAlone) {
  MoeSetup s;
  s.bias_speed = 0.01;
  s.alpha = 0.1;
  Graph g = moe_graph(s, 9);
  Executor ex(g);
  Tensor x = normal_tensor({64, s.D}, 10);
  const Tensor y_eval = ex.forward({x}).clone();
  for (const char* name : {"bias", "load", "balance_loss"})
    for (int64_t i = 0; i < g.param(name).value.numel(); ++i) EXPECT_EQ(g.param(name).value.data<float>()[i], 0.0f) << name;
  ex.set_training(true);
  const Tensor& y_train = ex.forward({x});
  // The bias moves after this batch is routed: the output is the eval one.
  for (int64_t i = 0; i < y_train.numel(); ++i) ASSERT_EQ(y_train.data<float>()[i], y_eval.data<float>()[i]) << i;
  const float* load = g.param("load").value.data<float>();
  const float* bias = g.param("bias").value.data<float>();
  double total = 0;
  for (int64_t e = 0; e < s.E; ++e) {
    total += load[e];
    const double mean = static_cast<double>(s.top_k) / s.E;
    // Overloaded experts go down, underloaded up, by the step.
    EXPECT_FLOAT_EQ(bias[e], load[e] > mean + 1e-6 ? -0.01f : load[e] < mean - 1e-6 ? 0.01f : 0.0f);
  }
  EXPECT_NEAR(total, s.top_k, 1e-5) << "loads are fractions of tokens and sum to top_k";
  EXPECT_GT(g.param("balance_loss").value.data<float>()[0], 0.0f);
}

// The balance loss from scratch: alpha * E * sum_e f_e P_e.
double balance_loss_ref(const Graph& g, const Tensor& x, const MoeSetup& m) {
  const int64_t N = x.dim(0);
  std::vector<double> f(m.E), P(m.E);
  for (int64_t t = 0; t < N; ++t) {
    const float* xt = x.data<float>() + t * m.D;
    for (int64_t e : chosen_experts(g, xt, m)) f[e] += 1.0 / (N * m.top_k);
    const std::vector<double> s = affinities(g, xt, m.D, m.affinity);
    const double sum = std::accumulate(s.begin(), s.end(), 0.0);
    for (int64_t e = 0; e < m.E; ++e) P[e] += s[e] / sum / N;
  }
  double loss = 0;
  for (int64_t e = 0; e < m.E; ++e) loss += f[e] * P[e];
  return m.alpha * m.E * loss;
}

TEST(MoeOp, BalanceLossValueAndGradient) {
  for (const char* affinity : {"softmax", "sigmoid"}) {
    SCOPED_TRACE(affinity);
    MoeSetup s;
    s.affinity = affinity;
    s.alpha = 0.3;
    Graph g = moe_graph(s, 12);
    // A routing bias far above the affinities' range fixes the choice (experts 0 and 1),
    // so f is constant and the loss is smooth in x and the router.
    float* bias = g.param("bias").value.data<float>();
    for (int64_t e = 0; e < s.E; ++e) bias[e] = 10.0f - 3.0f * e;
    Executor ex(g);
    ex.set_training(true);
    ex.set_input_grads(true);
    Tensor x = normal_tensor({10, s.D}, 13);
    ex.forward({x});
    const double value = g.param("balance_loss").value.data<float>()[0];
    EXPECT_NEAR(value, balance_loss_ref(g, x, s), 1e-5);
    // With d(output) = 0, backward leaves only the balance loss's gradient.
    ex.backward(Tensor::zeros({10, s.D}));
    const Tensor drouter = ex.grad("router").clone(), dx = ex.input_grad(0).clone();
    auto loss_at = [&] {
      ex.forward({x});
      return static_cast<double>(g.param("balance_loss").value.data<float>()[0]);
    };
    for (auto [name, value_t, grad] : {std::tuple{"router", g.param("router").value, drouter}, std::tuple{"x", x, dx}}) {
      double num = 0, den = 0;
      for (int64_t i = 0; i < value_t.numel(); ++i) {
        float* p = value_t.data<float>() + i;
        const float orig = *p;
        *p = orig + 1e-2f;
        const double hi = loss_at();
        *p = orig - 1e-2f;
        const double lo = loss_at();
        *p = orig;
        const double fd = (hi - lo) / 2e-2;
        num += (fd - grad.data<float>()[i]) * (fd - grad.data<float>()[i]);
        den += fd * fd;
      }
      EXPECT_GT(den, 0.0) << name;
      EXPECT_LT(std::sqrt(num / den), 2e-2) << name;
    }
  }
}

TEST(MoeOp, PartialGradientsMatchFullOnes) {
  // Only some weights trainable, x without gradient: what is computed matches the full backward.
  MoeSetup s;
  s.affinity = "sigmoid";
  Graph full = moe_graph(s, 14);
  Tensor x = normal_tensor({20, s.D}, 15);
  Tensor dy = normal_tensor({20, s.D}, 16);
  Executor ex_full(full);
  ex_full.set_training(true);
  ex_full.set_input_grads(true);
  ex_full.forward({x});
  ex_full.backward(dy);
  for (const char* frozen : {"router", "w1", "w2", "sw1", "sw2", "b1"}) {
    Graph part = moe_graph(s, 14);
    part.param(frozen).trainable = false;
    Executor ex(part);
    ex.set_training(true);
    ex.forward({x});
    ex.backward(dy);
    for (auto& [name, p] : part.params()) {
      if (!p.trainable) continue;
      const Tensor &a = ex.grad(name), &b = ex_full.grad(name);
      for (int64_t i = 0; i < a.numel(); ++i)
        ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5f) << name << " with " << frozen << " frozen";
    }
  }
}

// The compiled Plan runs the router and experts on weights packed once
// (packed_gemm.h), the executor on dnnl_sgemm: the same outputs at batch 1,
// at a small batch, and at one large enough that the experts split over the
// threads.
TEST(MoeOp, CompiledPlanMatchesTheExecutor) {
  const test_support::TempDir cache;  // the Plan's kernel choices go here, not to $HOME
  setenv("LEANAI_CACHE_DIR", cache.path().c_str(), 1);
  const int threads = num_threads();
  set_num_threads(2);
  Graph g = ModelBuilder({64}, 0).linear(64).activation("relu").moe(8, 2, 32, 1).linear(5).finish();
  CompileOptions untimed;
  untimed.tune = false;
  Plan plan(g, untimed);
  Executor ex(g);
  for (int64_t batch : {1, 7, 300}) {
    const Tensor x = test_support::random_tensor({batch, 64}, static_cast<uint64_t>(batch));
    const Tensor want = ex.forward({x}).clone();
    EXPECT_LT(test_support::max_abs_diff(want, plan.run(x)), 1e-4) << "batch " << batch;
  }
  set_num_threads(threads);
  unsetenv("LEANAI_CACHE_DIR");
}

TEST(MoeOp, FlopsCountActiveExpertsOnly) {
  MoeSetup s;  // D 6, E 6, H 4, shared width 4, top-2
  Graph g = moe_graph(s, 17);
  Executor ex(g);
  const double router = 2.0 * s.D * s.E, shared = 4.0 * s.D * s.SH, routed = s.top_k * 4.0 * s.D * s.H;
  EXPECT_DOUBLE_EQ(ex.flops_per_sample(), router + shared + routed);
  EXPECT_LT(ex.flops_per_sample(), router + shared + s.E * 4.0 * s.D * s.H) << "less than running every expert";
}

TEST(MoeOp, ShapeAndAttributeErrors) {
  MoeSetup s;
  auto run = [](Graph& gr, int64_t D) {
    Executor ex(gr);
    ex.forward({Tensor::zeros({2, D})});
  };
  {
    MoeSetup k = s;
    k.top_k = 7;
    Graph gk = moe_graph(k, 18);
    expect_error([&] { run(gk, s.D); }, {"moe", "top_k 7", "6 experts"});
  }
  {
    MoeSetup a = s;
    a.affinity = "relu";
    expect_error([&] { Graph ga = moe_graph(a, 18); run(ga, s.D); }, {"affinity", "relu"});
  }
  {
    MoeSetup c = s;
    c.capacity = -1;
    expect_error([&] { Graph gc = moe_graph(c, 18); run(gc, s.D); }, {"capacity_factor"});
  }
  // A w2 of the wrong shape names the input and the expected shape.
  Graph bad;
  int x = bad.add_input("x", {s.D});
  std::vector<int> ids = {x};
  for (const Shape& shape : std::vector<Shape>{{s.E, s.D}, {s.E, s.H, s.D}, {s.E, s.H}, {s.E, s.H, s.D}, {s.E, s.D}})
    ids.push_back(bad.add_param("p" + std::to_string(ids.size()), Tensor::zeros(shape)));
  for (const Shape& shape : std::vector<Shape>{{s.E}, {s.E}, {1}})
    ids.push_back(bad.add_param("b" + std::to_string(ids.size()), Tensor::zeros(shape), false));
  bad.set_output(bad.add("moe", ids));
  expect_error([&] { run(bad, s.D); }, {"w2", "[6, 6, 4]"});
}

// ---------------------------------------------------------------------------
// Builder, spec, training
// ---------------------------------------------------------------------------

TEST(MoeBuilder, SpecLayerBuildsTheOpWithBuffers) {
  json spec = json::parse(R"({"layers": [{"type": "linear", "out": 12}, {"type": "relu"},
      {"type": "moe", "experts": 16, "top_k": 2, "hidden": 8, "shared": 2, "affinity": "softmax",
       "capacity_factor": 1.5},
      {"type": "linear"}]})");
  Graph g = build_from_spec(spec, {5}, 3, 0);
  const Node* moe = nullptr;
  for (const Node& n : g.nodes())
    if (n.op == "moe") moe = &n;
  ASSERT_NE(moe, nullptr);
  EXPECT_EQ(moe->inputs.size(), 13u);
  EXPECT_EQ(moe->attrs["top_k"], 2);
  EXPECT_EQ(moe->attrs["affinity"], "softmax");
  EXPECT_EQ(moe->attrs["capacity_factor"], 1.5);
  EXPECT_EQ(g.param("moe1.w1").value.shape(), (Shape{16, 8, 12}));
  EXPECT_EQ(g.param("moe1.shared_w1").value.shape(), (Shape{16, 12}));
  EXPECT_EQ(g.param("moe1.shared_w2").value.shape(), (Shape{12, 16}));
  for (const char* buffer : {"moe1.bias", "moe1.load", "moe1.balance_loss"}) EXPECT_FALSE(g.param(buffer).trainable) << buffer;
  // Without shared experts the four shared inputs are left out.
  Graph g2 = ModelBuilder({12}, 0).moe(4, 1, 8).finish();
  EXPECT_EQ(g2.node(g2.output()).inputs.size(), 9u);
  EXPECT_EQ(g2.params().count("moe1.shared_w1"), 0u);
}

TEST(MoeBuilder, PresetRunsThreeOfSeventeenExpertMlps) {
  Graph g = build_preset("mlp-moe", {1, 28, 28}, 10, 0);
  const Node* moe = nullptr;
  for (const Node& n : g.nodes())
    if (n.op == "moe") moe = &n;
  ASSERT_NE(moe, nullptr);
  EXPECT_EQ(moe->attrs["top_k"], 2);
  EXPECT_EQ(g.param("moe1.w1").value.shape(), (Shape{16, 64, 256}));
  EXPECT_EQ(g.param("moe1.shared_w1").value.shape(), (Shape{64, 256}));
  // Multiply-adds per sample: fc1, router, 2 routed + 1 shared expert MLPs, fc2.
  const double active_macs = 784.0 * 256 + 256.0 * 16 + 3 * (2 * 256.0 * 64) + 256.0 * 10;
  EXPECT_NEAR(active_flops_per_sample(g) / (2 * active_macs), 1.0, 0.01);
}

TEST(MoeBuilder, SpecErrors) {
  auto build = [](const std::string& layer) {
    build_from_spec(json::parse(R"({"layers": [)" + layer + R"(, {"type": "linear"}]})"), {6}, 2, 0);
  };
  expect_error([&] { build(R"({"type": "moe", "hidden": 4})"); }, {"layer 0", "moe needs 'experts' and 'hidden'"});
  expect_error([&] { build(R"({"type": "moe", "experts": 2, "top_k": 3, "hidden": 4})"); }, {"layer 0", "top_k"});
  expect_error([&] { build(R"({"type": "moe", "experts": 2, "hidden": 4, "affinity": "max"})"); }, {"layer 0", "affinity"});
  expect_error([&] { build(R"({"type": "moe", "experts": 2, "hidden": 4, "gates": 1})"); }, {"layer 0", "unknown key 'gates'"});
  expect_error([] { build_from_spec(json::parse(R"({"layers": [{"type": "moe", "experts": 2, "hidden": 4}, {"type": "linear"}]})"),
                                    {1, 4, 4}, 2, 0); },
               {"moe needs a flat input"});
}

// Labels from a piecewise rule: the signs of x0 and x1 pick one of 4
// regions, and each region has its own linear rule (the sign of w_region . x)
// for the 2 classes. Experts can specialise by region.
std::shared_ptr<InMemoryDataset> piecewise_task(int64_t n, uint64_t seed) {
  const int64_t D = 8;
  Rng rng(seed);
  Tensor x = Tensor::empty({n, D});
  Tensor y = Tensor::empty({n}, DType::i64);
  Rng rule_rng(42);  // the same rule for every split
  std::vector<float> rule(4 * D);
  for (float& w : rule) w = rule_rng.normal();
  for (int64_t i = 0; i < n; ++i) {
    float* xi = x.data<float>() + i * D;
    for (int64_t d = 0; d < D; ++d) xi[d] = rng.normal();
    const int64_t region = (xi[0] > 0) * 2 + (xi[1] > 0);
    float v = 0;
    for (int64_t d = 2; d < D; ++d) v += rule[region * D + d] * xi[d];
    y.data<int64_t>()[i] = v > 0;
  }
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, 2);
}

TEST(MoeTraining, MoeMlpLearnsAPiecewiseTask) {
  json spec = json::parse(R"({"layers": [{"type": "linear", "out": 32}, {"type": "relu"},
      {"type": "moe", "experts": 8, "top_k": 2, "hidden": 16, "shared": 1, "affinity": "sigmoid"},
      {"type": "linear"}]})");
  Graph model = build_from_spec(spec, {8}, 2, 1);
  auto train = piecewise_task(8000, 1), test = piecewise_task(1000, 2);
  const double before = evaluate(model, *test).accuracy;
  TrainConfig cfg;
  cfg.batch_size = 64;
  cfg.optimizer.lr = 3e-3f;
  Trainer trainer(model, Task::classification, 2, cfg);
  for (int epoch = 0; epoch < 10; ++epoch) trainer.train_epoch(train);
  const double after = evaluate(model, *test).accuracy;
  EXPECT_GT(after, 0.9) << "accuracy before training " << before;
  // Every expert is in use after balancing.
  const Tensor& load = model.param("moe1.load").value;
  for (int64_t e = 0; e < 8; ++e) EXPECT_GT(load.data<float>()[e], 0.0f) << "expert " << e << " idle";
}

struct LoadStats {
  double max_load = 0;  // the largest fraction of tokens one expert took
  double entropy = 0;   // of the load distribution (loads / top_k), in nats
};

LoadStats load_stats(const Tensor& load, int64_t top_k) {
  LoadStats st;
  for (int64_t e = 0; e < load.numel(); ++e) {
    const double l = load.data<float>()[e], p = l / top_k;
    st.max_load = std::max(st.max_load, l);
    if (p > 0) st.entropy -= p * std::log(p);
  }
  return st;
}

// Trains moe -> linear on a task whose inputs all lean one way, with the
// router set so expert 0 wins nearly every token; returns the load stats
// after the first step and after training.
std::pair<LoadStats, LoadStats> skewed_training(double bias_speed) {
  const int64_t D = 8, E = 8, N = 2048;
  Rng rng(3);
  Tensor x = Tensor::empty({N, D});
  Tensor y = Tensor::empty({N}, DType::i64);
  for (int64_t i = 0; i < N; ++i) {
    float* xi = x.data<float>() + i * D;
    for (int64_t d = 0; d < D; ++d) xi[d] = 1.0f + rng.normal();  // mean (1, ..., 1)
    y.data<int64_t>()[i] = xi[2] + xi[3] > 2.0f;
  }
  auto data = std::make_shared<InMemoryDataset>(x, y, Task::classification, 2);
  MoeOptions options;
  options.bias_update_speed = bias_speed;
  Graph model = ModelBuilder({D}, 5).moe(E, 2, 8, 0, "sigmoid", options).linear(2).finish();
  // Expert 0's router row points along the inputs' mean: it wins nearly every token.
  float* router = model.param("moe1.router").value.data<float>();
  for (int64_t d = 0; d < D; ++d) router[d] = 1.0f;
  TrainConfig cfg;
  cfg.batch_size = 128;
  cfg.optimizer.lr = 1e-3f;
  Trainer trainer(model, Task::classification, 2, cfg);
  LoadStats first;
  trainer.on_step = [&](const StepProgress& p) {
    if (p.batch == 1 && p.epoch == 1) first = load_stats(model.param("moe1.load").value, 2);
  };
  for (int epoch = 0; epoch < 8; ++epoch) trainer.train_epoch(data);  // 128 steps
  return {first, load_stats(model.param("moe1.load").value, 2)};
}

TEST(MoeTraining, RoutingBiasMovesLoadTowardUniform) {
  // Measured here: max load 0.99 -> 0.34 and entropy 1.52 -> 2.06 with the
  // bias update; without it 0.99 -> 1.00 and 1.52 -> 1.40.
  const auto [start, balanced] = skewed_training(0.01);
  EXPECT_GT(start.max_load, 0.9) << "the setup should start with expert 0 taking nearly every token";
  EXPECT_LT(balanced.max_load, 0.6) << "max load should fall toward top_k / E = 0.25";
  EXPECT_GT(balanced.entropy, start.entropy + 0.3) << "load entropy should rise toward ln 8 = 2.08";
  const auto [start_without, unbalanced] = skewed_training(0.0);
  EXPECT_GT(unbalanced.max_load, start_without.max_load - 0.05) << "without the bias update expert 0 keeps its load";
  EXPECT_LT(unbalanced.entropy, start_without.entropy + 0.1);
}

TEST(MoeTraining, SteadyStateStepsCreateNoBuffers) {
  Graph model = ModelBuilder({8}, 0).moe(8, 2, 16, 1, "sigmoid", {0.001, 0.01, 1.25}).linear(2).finish();
  auto data = piecewise_task(300, 3);  // 4 full batches of 64 and a partial one
  TrainConfig cfg;
  cfg.batch_size = 64;
  Trainer trainer(model, Task::classification, 2, cfg);
  trainer.train_epoch(data);
  const int64_t after_first = Buffer::created();
  trainer.train_epoch(data);
  trainer.train_epoch(data);
  EXPECT_EQ(Buffer::created(), after_first) << "epochs 2 and 3 created buffers";
}

}  // namespace
}  // namespace leanai
