// Tests for model building (presets, JSON specs), optimizers and schedules
// against PyTorch's documented update rules, and the Trainer: accuracy on a
// Fashion-MNIST subset, bit-for-bit repeatability, exact checkpoint resume,
// and a regression fit with a known answer.
#include <gtest/gtest.h>

#include "expect_error.h"

#include "temp_dir.h"
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/core/threads.h"
#include "leanai/data/csv.h"
#include "leanai/data/dataset.h"
#include "leanai/data/idx.h"
#include "leanai/data/split.h"
#include "leanai/graph/executor.h"
#include "leanai/io/model_file.h"
#include "leanai/nn/models.h"
#include "leanai/nn/optimizer.h"
#include "leanai/nn/schedule.h"
#include "leanai/nn/trainer.h"

namespace fs = std::filesystem;
using namespace leanai;
using leanai::test_support::expect_error;

namespace {

using leanai::test_support::TempDir;

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Every parameter (buffers too) byte-identical; names the first that differs.
void expect_identical_params(const Graph& a, const Graph& b) {
  ASSERT_EQ(a.params().size(), b.params().size());
  for (auto& [name, p] : a.params()) {
    ASSERT_TRUE(b.params().count(name)) << name;
    const Tensor& q = b.params().at(name).value;
    if (!same_bytes(p.value, q)) {
      int64_t first = -1;
      for (int64_t i = 0; i < p.value.numel() && first < 0; ++i)
        if (p.value.data<float>()[i] != q.data<float>()[i]) first = i;
      ADD_FAILURE() << "parameter " << name << " differs, first at element " << first << ": "
                    << (first >= 0 ? p.value.data<float>()[first] : 0.0f) << " vs "
                    << (first >= 0 ? q.data<float>()[first] : 0.0f);
    }
  }
}

// Deep copy of a graph's parameter values (to compare before/after).
std::map<std::string, Tensor> snapshot(const Graph& g) {
  std::map<std::string, Tensor> s;
  for (auto& [name, p] : g.params()) s[name] = p.value.clone();
  return s;
}

class OneThread : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { set_num_threads(1); }
};

// ---------------------------------------------------------------------------
// (a) Presets and JSON specs

using Presets = OneThread;

TEST_F(Presets, ParameterCountsMatchThePyTorchReferenceModels) {
  // torch: sum(p.numel() for p in model.parameters()) of the reference MLP and CNN.
  EXPECT_EQ(build_preset("mlp", {1, 28, 28}, 10, 0).num_trainable_parameters(), 535818);
  EXPECT_EQ(build_preset("cnn", {1, 28, 28}, 10, 0).num_trainable_parameters(), 225034);
  // cnn-bn: convs and the hidden linear without bias, BN affine weights; running stats are buffers.
  Graph bn = build_preset("cnn-bn", {1, 28, 28}, 10, 0);
  EXPECT_EQ(bn.num_trainable_parameters(), 288 + 64 + 18432 + 128 + 3136 * 256 + 512 + 2570);
  int64_t buffers = 0;
  for (auto& [name, p] : bn.params())
    if (!p.trainable) buffers += p.value.numel();
  EXPECT_EQ(buffers, 2 * (32 + 64 + 256));
  // mlp on tabular data needs no flatten; the output width follows num_outputs.
  EXPECT_EQ(build_preset("mlp", {13}, 3, 0).num_trainable_parameters(), 13 * 512 + 512 + 512 * 256 + 256 + 256 * 3 + 3);
}

TEST_F(Presets, InitializationFollowsPyTorchBoundsAndSeed) {
  Graph a = build_preset("mlp", {1, 28, 28}, 10, 5), b = build_preset("mlp", {1, 28, 28}, 10, 5);
  Graph c = build_preset("mlp", {1, 28, 28}, 10, 6);
  expect_identical_params(a, b);
  EXPECT_FALSE(same_bytes(a.params().at("fc1.weight").value, c.params().at("fc1.weight").value));
  // uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases alike.
  for (auto [name, fan_in] : {std::pair{"fc1.weight", 784}, {"fc1.bias", 784}, {"fc2.weight", 512}, {"fc3.weight", 256}}) {
    SCOPED_TRACE(name);
    const Tensor& w = a.params().at(name).value;
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    float lo = 1, hi = -1;
    for (int64_t i = 0; i < w.numel(); ++i) {
      lo = std::min(lo, w.data<float>()[i]);
      hi = std::max(hi, w.data<float>()[i]);
    }
    EXPECT_GE(lo, -bound);
    EXPECT_LE(hi, bound);
    EXPECT_LT(lo, -0.9f * bound);  // the range is used, not a narrower one
    EXPECT_GT(hi, 0.9f * bound);
  }
}

TEST_F(Presets, CnnBnRunsForwardInEvalAndTraining) {
  Graph g = build_preset("cnn-bn", {1, 28, 28}, 10, 1);
  Tensor x = Tensor::empty({2, 1, 28, 28});
  Rng rng(3);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "eval");
    Executor ex(g);
    ex.set_training(training);
    const Tensor& y = ex.forward({x});
    ASSERT_EQ(y.shape(), (Shape{2, 10}));
    bool differ = false;
    for (int64_t i = 0; i < y.numel(); ++i) {
      EXPECT_TRUE(std::isfinite(y.data<float>()[i]));
      differ |= y.data<float>()[i] != y.data<float>()[i % 10];
    }
    EXPECT_TRUE(differ) << "the two samples gave identical logits";
  }
}

TEST_F(Presets, ResnetHasThreeResidualBlocksWithProjectionShortcuts) {
  Graph g = build_preset("resnet", {1, 28, 28}, 10, 0);
  int adds = 0, convs = 0;
  for (const Node& n : g.nodes()) {
    adds += n.op == "add";
    convs += n.op == "conv2d";
  }
  EXPECT_EQ(adds, 3);
  EXPECT_EQ(convs, 1 + 2 * 3 + 2);  // stem, two per block, a 1x1 shortcut where the width changes
  EXPECT_EQ(g.param("conv9.weight").value.shape(), (Shape{64, 32, 1, 1}));
  Executor ex(g);
  EXPECT_EQ(ex.forward({Tensor::zeros({2, 1, 28, 28})}).shape(), (Shape{2, 10}));
  // 16 * 9 stem + blocks (16: 2 * 16*16*9; 32: 16*32*9 + 32*32*9 + 16*32; 64: 32*64*9 + 64*64*9 + 32*64) + BN + fc.
  const int64_t convs_w = 144 + 2 * 2304 + 4608 + 9216 + 512 + 18432 + 36864 + 2048;
  const int64_t bn_w = 2 * (16 + 16 + 16 + 32 + 32 + 32 + 64 + 64 + 64);
  EXPECT_EQ(g.num_trainable_parameters(), convs_w + bn_w + 64 * 10 + 10);
}

TEST_F(Presets, Errors) {
  expect_error([] { build_preset("resnet50", {1, 28, 28}, 10, 0); }, {"unknown model preset 'resnet50'", "mlp", "cnn-bn", "resnet"});
  expect_error([] { build_preset("cnn", {13}, 3, 0); }, {"preset 'cnn' needs image input", "[13]"});
  EXPECT_TRUE(is_preset("cnn-bn"));
  EXPECT_FALSE(is_preset("CNN"));
}

TEST_F(Presets, JsonSpecBuildsTheDescribedModel) {
  const json spec = json::parse(R"({"name": "small", "layers": [
      {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}, {"type": "batchnorm"}, {"type": "relu"},
      {"type": "maxpool2d", "kernel": 2}, {"type": "conv2d", "out": 4, "kernel": 3, "stride": 2, "bias": false},
      {"type": "gelu"}, {"type": "flatten"}, {"type": "dropout", "p": 0.5}, {"type": "linear", "out": 12},
      {"type": "tanh"}, {"type": "linear"}]})");
  Graph g = build_from_spec(spec, {1, 28, 28}, 10, 0);
  // 28 -pad-> 28 -pool-> 14 -conv s2-> 6: 4 * 6 * 6 = 144 features.
  const int64_t expected = (8 * 9 + 8) + (8 + 8) + (4 * 8 * 9) + (144 * 12 + 12) + (12 * 10 + 10);
  EXPECT_EQ(g.num_trainable_parameters(), expected);
  EXPECT_FALSE(g.params().count("conv5.bias")) << "bias: false was ignored";
  Executor ex(g);
  Tensor x = Tensor::full({3, 1, 28, 28}, 0.5f);
  EXPECT_EQ(ex.forward({x}).shape(), (Shape{3, 10}));
  // Tabular: the last linear gets one output per class.
  Graph t = build_from_spec(json::parse(R"({"layers": [{"type": "linear", "out": 4}, {"type": "relu"},
                                                     {"type": "linear"}]})"),
                            {5}, 3, 0);
  EXPECT_EQ(t.num_trainable_parameters(), 5 * 4 + 4 + 4 * 3 + 3);
}

TEST_F(Presets, JsonSpecErrors) {
  const Shape img = {1, 28, 28};
  auto spec = [](const char* text) { return json::parse(text); };
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "conv3d", "out": 4}]})"), img, 10, 0); },
               {"layer 0", "unknown layer type 'conv3d'", "conv2d"});
  expect_error([&] {
    build_from_spec(spec(R"({"layers": [{"type": "flatten"}, {"type": "linear", "out": 10, "outs": 5}]})"), img, 10, 0);
  }, {"layer 1", "unknown key 'outs'"});
  expect_error([&] {
    build_from_spec(spec(R"({"layers": [{"type": "flatten"}, {"type": "linear"}, {"type": "relu"}]})"), img, 10, 0);
  }, {"layer 1", "linear needs 'out'"});
  expect_error([&] {
    build_from_spec(spec(R"({"layers": [{"type": "flatten"}, {"type": "linear", "out": 7}]})"), img, 10, 0);
  }, {"ends with sample shape [7]", "10 outputs"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "flatten"}]})"), img, 10, 0); },
               {"ends with sample shape [784]"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "linear"}], "lr": 1})"), {5}, 3, 0); },
               {"unknown key 'lr'"});
  expect_error([&] { build_from_spec(spec(R"({"layers": []})"), img, 10, 0); }, {"non-empty 'layers'"});
  expect_error([&] { build_from_spec(spec(R"([{"type": "linear"}])"), img, 10, 0); }, {"'layers'"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"out": 3}]})"), {5}, 3, 0); }, {"layer 0", "'type'"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "linear", "out": "ten"}]})"), {5}, 3, 0); },
               {"'out' must be an integer"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "linear", "out": 0}]})"), {5}, 3, 0); },
               {"'out' must be >= 1"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "dropout", "p": 1.5}, {"type": "linear"}]})"), {5}, 3, 0); },
               {"dropout 'p'"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "conv2d", "out": 4, "kernel": 3}, {"type": "linear"}]})"), {5}, 3, 0); },
               {"layer 0 (conv2d)", "[C, H, W]"});
  expect_error([&] { build_from_spec(spec(R"({"layers": [{"type": "linear"}]})"), img, 10, 0); },
               {"layer 0 (linear)", "flatten"});

  TempDir dir;
  expect_error([&] { read_spec_file(dir.file("nope.json")); }, {"cannot open model spec", "nope.json"});
  std::ofstream(dir.file("bad.json")) << "{\"layers\": [";
  expect_error([&] { read_spec_file(dir.file("bad.json")); }, {"bad.json", "not valid JSON"});
}

// ---------------------------------------------------------------------------
// (b) Optimizers against PyTorch's formulas (torch.optim docs), in double

struct RefParam {
  std::vector<double> w, m, v, buf;
};

// Gradient of element i at step t (1-based), varied in sign and size.
double grad_at(int p, int i, int t) { return 0.3 * std::sin(1.7 * t + 0.9 * i + 2.1 * p) + 0.05 * (i - 1); }

struct OptCase {
  OptimizerConfig config;
  const char* label;
};

// Readable names in test listings (not the struct's bytes).
void PrintTo(const OptCase& c, std::ostream* os) { *os << c.label; }

class OptimizerReference : public OneThread, public ::testing::WithParamInterface<OptCase> {};

TEST_P(OptimizerReference, MatchesPyTorchUpdateRules) {
  const OptimizerConfig& c = GetParam().config;
  const std::vector<std::vector<float>> init = {{0.5f, -1.25f, 2.0f, 0.0f, -0.3f}, {1.0f, -0.75f, 0.1f}};
  std::vector<ParamRef> params;
  std::vector<RefParam> ref(init.size());
  for (size_t p = 0; p < init.size(); ++p) {
    const int64_t n = static_cast<int64_t>(init[p].size());
    std::string name = "p";
    name += std::to_string(p);
    params.push_back({name, Tensor::from_vector({n}, init[p]), Tensor::zeros({n})});
    ref[p].w.assign(init[p].begin(), init[p].end());
    ref[p].m.assign(n, 0.0);
    ref[p].v.assign(n, 0.0);
    ref[p].buf.assign(n, 0.0);
  }
  auto opt = make_optimizer(c, params);
  EXPECT_FLOAT_EQ(opt->lr(), c.lr);
  double lr = c.lr;
  for (int t = 1; t <= 6; ++t) {
    if (t == 4) {  // a schedule changing the lr mid-way
      lr = c.lr * 0.5;
      opt->set_lr(static_cast<float>(lr));
    }
    for (size_t p = 0; p < params.size(); ++p)
      for (int64_t i = 0; i < params[p].grad.numel(); ++i)
        params[p].grad.data<float>()[i] = static_cast<float>(grad_at(static_cast<int>(p), static_cast<int>(i), t));
    opt->step();
    const double wd = c.weight_decay, mu = c.momentum, b1 = c.beta1, b2 = c.beta2, eps = c.eps;
    for (size_t p = 0; p < params.size(); ++p) {
      RefParam& r = ref[p];
      for (size_t i = 0; i < r.w.size(); ++i) {
        // The gradient as the optimizer saw it (a float).
        double g = static_cast<float>(grad_at(static_cast<int>(p), static_cast<int>(i), t));
        if (c.kind == "sgd") {
          g += wd * r.w[i];
          if (mu != 0.0) {
            r.buf[i] = t == 1 ? g : mu * r.buf[i] + g;  // dampening 0
            g = c.nesterov ? g + mu * r.buf[i] : r.buf[i];
          }
          r.w[i] -= lr * g;
        } else {
          if (c.kind == "adamw") r.w[i] *= 1.0 - lr * wd;
          else g += wd * r.w[i];
          r.m[i] = b1 * r.m[i] + (1 - b1) * g;
          r.v[i] = b2 * r.v[i] + (1 - b2) * g * g;
          const double m_hat = r.m[i] / (1 - std::pow(b1, t));
          const double v_hat = r.v[i] / (1 - std::pow(b2, t));
          r.w[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
        }
        const double got = params[p].value.data<float>()[i];
        EXPECT_NEAR(got, r.w[i], 2e-6 + 2e-6 * std::abs(r.w[i])) << "step " << t << " param " << p << " element " << i;
      }
    }
  }
}

OptimizerConfig opt_config(const char* kind, float lr, float momentum, bool nesterov, float wd, float eps = 1e-8f,
                           float beta1 = 0.9f, float beta2 = 0.999f) {
  OptimizerConfig c;
  c.kind = kind;
  c.lr = lr;
  c.momentum = momentum;
  c.nesterov = nesterov;
  c.weight_decay = wd;
  c.eps = eps;
  c.beta1 = beta1;
  c.beta2 = beta2;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, OptimizerReference,
    ::testing::Values(OptCase{opt_config("sgd", 0.1f, 0.0f, false, 0.0f), "sgd_plain"},
                      OptCase{opt_config("sgd", 0.1f, 0.9f, false, 0.0f), "sgd_momentum"},
                      OptCase{opt_config("sgd", 0.05f, 0.8f, true, 0.01f), "sgd_nesterov_wd"},
                      OptCase{opt_config("sgd", 0.1f, 0.0f, false, 0.1f), "sgd_wd"},
                      OptCase{opt_config("adam", 0.01f, 0, false, 0.0f), "adam"},
                      OptCase{opt_config("adam", 0.01f, 0, false, 0.05f), "adam_l2"},
                      // A large eps makes its place (outside the sqrt, after bias correction) matter.
                      OptCase{opt_config("adam", 0.02f, 0, false, 0.0f, 0.1f, 0.8f, 0.9f), "adam_eps_betas"},
                      OptCase{opt_config("adamw", 0.01f, 0, false, 0.1f), "adamw"},
                      OptCase{opt_config("adamw", 0.03f, 0, false, 0.3f, 0.05f, 0.5f, 0.7f), "adamw_eps_betas"}),
    [](const ::testing::TestParamInfo<OptCase>& info) { return std::string(info.param.label); });

// The optimizer's exported state continues the run exactly (what checkpoints rely on).
TEST_F(OneThread, OptimizerStateRoundTripContinuesExactly) {
  for (const char* kind : {"sgd", "adam", "adamw"}) {
    SCOPED_TRACE(kind);
    OptimizerConfig c = opt_config(kind, 0.01f, std::string(kind) == "sgd" ? 0.9f : 0.0f, false, 0.01f);
    auto make = [&](std::vector<ParamRef>& ps) {
      ps = {{"a", Tensor::from_vector({3}, {0.1f, -0.2f, 0.3f}), Tensor::zeros({3})}};
      return make_optimizer(c, ps);
    };
    std::vector<ParamRef> pa, pb;
    auto a = make(pa), b = make(pb);
    auto set_grad = [](std::vector<ParamRef>& ps, int t) {
      for (int i = 0; i < 3; ++i) ps[0].grad.data<float>()[i] = static_cast<float>(grad_at(0, i, t));
    };
    for (int t = 1; t <= 3; ++t) {
      set_grad(pa, t);
      a->step();
    }
    // b takes a's weights and state, then both take the same two steps.
    pb[0].value.copy_from(pa[0].value);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : a->state()) state[name] = t.clone();
    b->load_state(state);
    for (int t = 4; t <= 5; ++t) {
      set_grad(pa, t);
      set_grad(pb, t);
      a->step();
      b->step();
    }
    EXPECT_TRUE(same_bytes(pa[0].value, pb[0].value));
  }
}

TEST_F(OneThread, OptimizerConfigErrors) {
  std::vector<ParamRef> none;
  expect_error([&] { make_optimizer(opt_config("rmsprop", 0.1f, 0, false, 0), none); }, {"unknown optimizer 'rmsprop'"});
  expect_error([&] { make_optimizer(opt_config("sgd", 0.0f, 0, false, 0), none); }, {"learning rate"});
  expect_error([&] { make_optimizer(opt_config("sgd", -1.0f, 0, false, 0), none); }, {"learning rate"});
  expect_error([&] { make_optimizer(opt_config("sgd", 0.1f, 0, true, 0), none); }, {"Nesterov needs momentum"});
  expect_error([&] { make_optimizer(opt_config("sgd", 0.1f, 1.0f, false, 0), none); }, {"momentum"});
  expect_error([&] { make_optimizer(opt_config("adam", 0.1f, 0, false, -0.1f), none); }, {"weight decay"});
  expect_error([&] { make_optimizer(opt_config("adam", 0.1f, 0, false, 0, 1e-8f, 1.0f), none); }, {"betas"});
}

// Parameter groups: a parameter whose name ends with a key of lr_scale learns
// at lr times its value (the longest key wins); the rest at lr. One step from
// zero moments: SGD moves by lr * g, Adam by lr * sign(g).
TEST_F(OneThread, OptimizerLrScaleGivesParameterGroupsTheirOwnRate) {
  for (const char* kind : {"sgd", "adam"}) {
    SCOPED_TRACE(kind);
    OptimizerConfig c = opt_config(kind, 0.01f, 0.0f, false, 0.0f);
    c.lr_scale = {{".log_alpha", 20.0f}, {"b.log_alpha", 5.0f}};
    std::vector<ParamRef> ps = {{"w", Tensor::zeros({2}), Tensor::full({2}, 0.5f)},
                                {"gate1.log_alpha", Tensor::zeros({2}), Tensor::full({2}, 0.5f)},
                                {"gate1b.log_alpha", Tensor::zeros({2}), Tensor::full({2}, 0.5f)}};
    auto opt = make_optimizer(c, ps);
    opt->step();
    const float unit = std::string(kind) == "sgd" ? 0.01f * 0.5f : 0.01f;
    EXPECT_NEAR(ps[0].value.data<float>()[0], -unit, 1e-6);
    EXPECT_NEAR(ps[1].value.data<float>()[0], -20.0f * unit, 1e-5);
    EXPECT_NEAR(ps[2].value.data<float>()[0], -5.0f * unit, 1e-5);
  }
  OptimizerConfig bad = opt_config("adam", 0.01f, 0, false, 0);
  bad.lr_scale = {{".log_alpha", 0.0f}};
  std::vector<ParamRef> none;
  expect_error([&] { make_optimizer(bad, none); }, {"learning-rate scale"});
  // Checkpoints keep the groups; configs saved before them read as none.
  TrainConfig tc;
  tc.optimizer.lr_scale = {{".log_alpha", 20.0f}};
  EXPECT_EQ(TrainConfig::from_json(tc.to_json()).optimizer.lr_scale, tc.optimizer.lr_scale);
  json old = tc.to_json();
  old["optimizer"].erase("lr_scale");
  EXPECT_TRUE(TrainConfig::from_json(old).optimizer.lr_scale.empty());
}

// ---------------------------------------------------------------------------
// Schedules and gradient clipping

TEST(Schedule, StepDecay) {
  ScheduleConfig c;
  c.kind = "step";
  c.step_size = 10;
  c.gamma = 0.5f;
  EXPECT_NO_THROW(validate_schedule(c));
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 0), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 9), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 10), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 19), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 20), 0.025f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 35), 0.0125f);
}

TEST(Schedule, CosineWithWarmup) {
  ScheduleConfig c;
  c.kind = "cosine";
  c.warmup = 4;
  c.total = 24;
  c.min_lr = 0.01f;
  EXPECT_NO_THROW(validate_schedule(c));
  // Linear warm-up: (step + 1) / warmup of the base lr.
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 0), 0.025f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 1), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 3), 0.1f);
  // Cosine from the base lr at the end of warm-up to min_lr at `total`.
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 4), 0.1f);
  EXPECT_NEAR(lr_at(c, 0.1f, 9), 0.01 + 0.09 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-7);
  EXPECT_NEAR(lr_at(c, 0.1f, 14), 0.055, 1e-7);
  EXPECT_NEAR(lr_at(c, 0.1f, 19), 0.01 + 0.09 * 0.5 * (1 + std::cos(M_PI * 0.75)), 1e-7);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 24), 0.01f);
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 1000), 0.01f);
  // Monotone after warm-up.
  for (int64_t s = 4; s < 30; ++s) EXPECT_LE(lr_at(c, 0.1f, s + 1), lr_at(c, 0.1f, s)) << s;
  // No warm-up: starts at the base lr.
  c.warmup = 0;
  EXPECT_FLOAT_EQ(lr_at(c, 0.1f, 0), 0.1f);
}

TEST(Schedule, ConstantAndErrors) {
  ScheduleConfig c;
  EXPECT_FLOAT_EQ(lr_at(c, 0.3f, 12345), 0.3f);
  c.kind = "linear";
  expect_error([&] { validate_schedule(c); }, {"unknown schedule 'linear'"});
  c = ScheduleConfig{};
  c.step_size = 0;
  expect_error([&] { validate_schedule(c); }, {"step size"});
  c = ScheduleConfig{};
  c.gamma = 0.0f;
  expect_error([&] { validate_schedule(c); }, {"gamma"});
  c = ScheduleConfig{};
  c.warmup = -1;
  expect_error([&] { validate_schedule(c); }, {"warm-up"});
}

TEST(ClipGradNorm, ScalesToTheMaxNorm) {
  auto make = [] {
    return std::vector<ParamRef>{{"a", Tensor::zeros({2}), Tensor::from_vector({2}, {3.0f, 4.0f})},
                                 {"b", Tensor::zeros({1}), Tensor::from_vector({1}, {-12.0f})}};
  };
  auto norm_of = [](const std::vector<ParamRef>& ps) {
    double sq = 0;
    for (auto& p : ps)
      for (int64_t i = 0; i < p.grad.numel(); ++i) sq += p.grad.data<float>()[i] * p.grad.data<float>()[i];
    return std::sqrt(sq);
  };
  std::vector<ParamRef> ps = make();
  EXPECT_NEAR(clip_grad_norm(ps, 6.5), 13.0, 1e-9);  // sqrt(9 + 16 + 144)
  EXPECT_NEAR(norm_of(ps), 6.5, 1e-5);
  EXPECT_NEAR(ps[0].grad.data<float>()[0], 1.5f, 1e-6);  // direction kept: every value halved
  EXPECT_NEAR(ps[0].grad.data<float>()[1], 2.0f, 1e-6);
  EXPECT_NEAR(ps[1].grad.data<float>()[0], -6.0f, 1e-6);
  // Below the limit (or no limit): untouched.
  for (double max_norm : {13.5, 100.0, 0.0}) {
    std::vector<ParamRef> qs = make();
    EXPECT_NEAR(clip_grad_norm(qs, max_norm), 13.0, 1e-9);
    EXPECT_EQ(qs[0].grad.data<float>()[0], 3.0f);
    EXPECT_EQ(qs[1].grad.data<float>()[0], -12.0f);
  }
}

// ---------------------------------------------------------------------------
// Trainer on data

// Fashion-MNIST subsets, loaded once: a stratified 6000-sample slice of the
// train split and a stratified 2000-sample slice of the test split.
struct Fmnist {
  std::shared_ptr<InMemoryDataset> train, test;
};

const Fmnist* fmnist() {
  static const Fmnist* data = [] {
    if (!has_mnist_files(kFashionMnistDir)) return static_cast<Fmnist*>(nullptr);
    auto full_train = load_fashion_mnist(kFashionMnistDir, true);
    auto full_test = load_fashion_mnist(kFashionMnistDir, false);
    auto* d = new Fmnist;
    d->train = full_train->subset(train_val_split_indices(*full_train, 0.1, 1).val);
    d->test = full_test->subset(train_val_split_indices(*full_test, 0.2, 1).val);
    return d;
  }();
  return data;
}

// The first n samples of the 6000-sample subset (shuffled by the split, so every class appears).
std::shared_ptr<InMemoryDataset> small_train(int64_t n) {
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i * 6000 / n;
  return fmnist()->train->subset(idx);
}

#define NEED_FMNIST() \
  if (!fmnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)"

using TrainerTest = OneThread;

TEST_F(TrainerTest, MlpReachesAccuracyOnFashionMnistSubset) {
  NEED_FMNIST();
  ASSERT_EQ(fmnist()->train->size(), 6000);
  ASSERT_EQ(fmnist()->test->size(), 2000);
  Graph model = build_preset("mlp", {1, 28, 28}, 10, 0);
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 64;
  cfg.optimizer.kind = "adam";
  cfg.optimizer.lr = 1e-3f;
  Trainer trainer(model, Task::classification, 10, cfg);
  const EvalResult before = evaluate(model, *fmnist()->test);
  EpochStats e1 = trainer.train_epoch(fmnist()->train);
  EpochStats e2 = trainer.train_epoch(fmnist()->train);
  EXPECT_EQ(e1.epoch, 1);
  EXPECT_EQ(e2.epoch, 2);
  EXPECT_EQ(trainer.steps_done(), 2 * 94);  // ceil(6000 / 64) per epoch
  EXPECT_LT(e2.train_loss, e1.train_loss);
  EXPECT_GT(e2.train_accuracy, e1.train_accuracy);
  EXPECT_FLOAT_EQ(e2.lr, 1e-3f);

  const EvalResult r = evaluate(model, *fmnist()->test);
  // Measured on this machine (one thread, seed 0): accuracy 0.8115, loss 0.517.
  // The threshold sits a few points below, for other CPUs' rounding.
  EXPECT_GE(r.accuracy, 0.78) << "test accuracy " << r.accuracy;
  EXPECT_LT(before.accuracy, 0.3) << "the untrained model should be near chance";
  EXPECT_LT(r.loss, before.loss);
  EXPECT_EQ(r.count, 2000);
  // The confusion matrix adds up and agrees with the accuracy.
  int64_t total = 0, diag = 0;
  for (size_t t = 0; t < r.confusion.size(); ++t)
    for (size_t p = 0; p < r.confusion[t].size(); ++p) {
      total += r.confusion[t][p];
      if (t == p) diag += r.confusion[t][p];
    }
  EXPECT_EQ(total, 2000);
  EXPECT_DOUBLE_EQ(r.accuracy, diag / 2000.0);
  ASSERT_EQ(r.per_class_accuracy.size(), 10u);
  EXPECT_GT(r.per_class_accuracy[1], 0.85) << "trousers are the easiest class";
}

TEST_F(TrainerTest, OneThreadTrainingIsBitForBitRepeatable) {
  NEED_FMNIST();
  auto data = small_train(384);
  TrainConfig cfg;
  cfg.batch_size = 32;
  cfg.seed = 13;
  // cnn-bn: fused conv blocks, batch norm, dropout (the executor's RNG) and Adam.
  Graph a = build_preset("cnn-bn", {1, 28, 28}, 10, 4), b = build_preset("cnn-bn", {1, 28, 28}, 10, 4);
  const auto initial = snapshot(a);
  Trainer ta(a, Task::classification, 10, cfg), tb(b, Task::classification, 10, cfg);
  EpochStats sa = ta.train_epoch(data), sb = tb.train_epoch(data);
  expect_identical_params(a, b);
  EXPECT_EQ(sa.train_loss, sb.train_loss);
  EXPECT_EQ(sa.train_accuracy, sb.train_accuracy);
  // Training changed every trainable parameter and the running statistics.
  for (auto& [name, p] : a.params()) EXPECT_FALSE(same_bytes(p.value, initial.at(name))) << name << " did not change";

  // A different seed gives a different run (the comparison above is not vacuous).
  Graph c = build_preset("cnn-bn", {1, 28, 28}, 10, 4);
  cfg.seed = 14;
  Trainer tc(c, Task::classification, 10, cfg);
  tc.train_epoch(data);
  EXPECT_FALSE(same_bytes(a.params().at("fc2.weight").value, c.params().at("fc2.weight").value));
}

// Trains 2 epochs straight, and 1 epoch + checkpoint file + resume in a new
// Trainer on the loaded graph + 1 epoch; the parameters must be byte-identical.
void expect_exact_resume(const std::function<Graph()>& build, std::shared_ptr<const Dataset> data,
                         const TrainConfig& cfg, Task task, int64_t outputs) {
  TempDir dir;
  Graph straight = build();
  Trainer t1(straight, task, outputs, cfg);
  t1.train_epoch(data);
  t1.train_epoch(data);

  Graph first = build();
  {
    Trainer t2(first, task, outputs, cfg);
    t2.train_epoch(data);
    save_checkpoint(dir.file("c.ckpt"), first, {{"note", "half way"}}, t2.state_tensors(), t2.state_json());
  }
  LoadedModel m = load_model(dir.file("c.ckpt"));
  ASSERT_TRUE(m.is_checkpoint());
  const TrainConfig saved = TrainConfig::from_json(m.trainer_state.at("config"));
  EXPECT_EQ(saved.to_json(), cfg.to_json());
  Trainer t3(m.graph, task, outputs, saved);
  t3.restore(m.trainer_tensors, m.trainer_state);
  EXPECT_EQ(t3.epochs_done(), 1);
  EpochStats s = t3.train_epoch(data);
  EXPECT_EQ(s.epoch, 2);
  EXPECT_EQ(t3.steps_done(), t1.steps_done());
  expect_identical_params(straight, m.graph);
  EXPECT_EQ(t3.state_json(), t1.state_json());
}

TEST_F(TrainerTest, CheckpointResumeIsExactCnnBnAdam) {
  NEED_FMNIST();
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 32;
  cfg.seed = 21;
  expect_exact_resume([] { return build_preset("cnn-bn", {1, 28, 28}, 10, 8); }, small_train(192), cfg,
                      Task::classification, 10);
}

TEST_F(TrainerTest, CheckpointResumeIsExactSgdNesterovCosineClipDropout) {
  // Tabular data, a spec with batch norm and heavy dropout, SGD with Nesterov
  // momentum and weight decay, cosine schedule with warm-up spanning the
  // checkpoint, clipping and label smoothing.
  Rng rng(5);
  const int64_t n = 300, f = 12;
  Tensor x = Tensor::empty({n, f});
  Tensor y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    y.data<int64_t>()[i] = i % 4;
    for (int64_t j = 0; j < f; ++j) x.data<float>()[i * f + j] = rng.normal() + (j % 4 == i % 4 ? 1.0f : 0.0f);
  }
  auto data = std::make_shared<InMemoryDataset>(x, y, Task::classification, 4);
  const json spec = json::parse(R"({"layers": [{"type": "linear", "out": 32}, {"type": "batchnorm"}, {"type": "relu"},
      {"type": "dropout", "p": 0.5}, {"type": "linear", "out": 16}, {"type": "gelu"}, {"type": "dropout", "p": 0.2},
      {"type": "linear"}]})");
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 16;  // 19 batches, the last one partial
  cfg.seed = 3;
  cfg.optimizer = opt_config("sgd", 0.05f, 0.9f, true, 1e-3f);
  cfg.schedule.kind = "cosine";
  cfg.schedule.warmup = 25;
  cfg.schedule.total = 38;
  cfg.clip_norm = 1.0;
  cfg.label_smoothing = 0.1f;
  expect_exact_resume([&] { return build_from_spec(spec, {f}, 4, 2); }, data, cfg, Task::classification, 4);
}

// y = 2 x1 - 3 x2 + 0.5: a linear model trained through the CSV loader and
// Trainer(Task::regression) recovers the coefficients.
TEST_F(TrainerTest, RegressionOnSyntheticCsvFindsTheKnownAnswer) {
  TempDir dir;
  const std::string path = dir.file("linear.csv");
  {
    std::ofstream out(path);
    out << "x1,x2,y\n";
    Rng rng(8);
    for (int i = 0; i < 256; ++i) {
      const double x1 = rng.uniform(-1.0f, 1.0f), x2 = rng.uniform(-1.0f, 1.0f);
      out << x1 << "," << x2 << "," << (2.0 * x1 - 3.0 * x2 + 0.5) << "\n";
    }
  }
  CsvOptions opt;
  opt.label_column = "y";
  opt.task = Task::regression;
  CsvTable table = load_csv(path, opt);
  ASSERT_EQ(table.dataset->task(), Task::regression);
  ASSERT_EQ(table.dataset->num_outputs(), 1);
  ASSERT_EQ(table.dataset->sample_shape(), (Shape{2}));
  EXPECT_EQ(table.feature_names, (std::vector<std::string>{"x1", "x2"}));

  Graph model = build_from_spec(json::parse(R"({"layers": [{"type": "linear"}]})"), {2}, 1, 0);
  const double mse_before = evaluate(model, *table.dataset).loss;
  TrainConfig cfg;
  cfg.batch_size = 16;
  cfg.optimizer.lr = 0.05f;
  Trainer trainer(model, Task::regression, 1, cfg);
  EpochStats last;
  for (int e = 0; e < 40; ++e) last = trainer.train_epoch(table.dataset);
  const EvalResult r = evaluate(model, *table.dataset);
  EXPECT_GT(mse_before, 1.0);
  EXPECT_LT(r.loss, 1e-4) << "mse";
  EXPECT_LT(r.mae, 1e-2);
  EXPECT_TRUE(r.confusion.empty());
  EXPECT_LT(last.train_loss, 1e-3);
  const float* w = model.params().at("fc1.weight").value.data<float>();
  const float* b = model.params().at("fc1.bias").value.data<float>();
  EXPECT_NEAR(w[0], 2.0, 0.02);
  EXPECT_NEAR(w[1], -3.0, 0.02);
  EXPECT_NEAR(b[0], 0.5, 0.02);
}

TEST_F(TrainerTest, ConfigErrorsAndDivergence) {
  Graph g = build_from_spec(json::parse(R"({"layers": [{"type": "linear"}]})"), {2}, 2, 0);
  TrainConfig cfg;
  cfg.epochs = 0;
  expect_error([&] { Trainer(g, Task::classification, 2, cfg); }, {"epochs"});
  cfg = TrainConfig{};
  cfg.batch_size = 0;
  expect_error([&] { Trainer(g, Task::classification, 2, cfg); }, {"batch size"});
  cfg = TrainConfig{};
  cfg.schedule.kind = "exp";
  expect_error([&] { Trainer(g, Task::classification, 2, cfg); }, {"unknown schedule"});
  // A huge learning rate on unbounded regression targets blows up: a clear error, not NaN weights.
  Tensor x = Tensor::from_vector({4, 2}, {1e3f, -1e3f, 2e3f, 5e2f, -3e3f, 1e3f, 4e3f, -2e3f});
  Tensor y = Tensor::from_vector({4, 2}, {1e6f, -1e6f, 2e6f, 3e6f, -1e6f, 5e6f, 2e6f, -4e6f});
  auto data = std::make_shared<InMemoryDataset>(x, y, Task::regression, 2);
  cfg = TrainConfig{};
  cfg.optimizer = opt_config("sgd", 10.0f, 0, false, 0);
  cfg.batch_size = 4;
  Trainer t(g, Task::regression, 2, cfg);
  expect_error([&] {
    for (int e = 0; e < 50; ++e) t.train_epoch(data);
  }, {"training diverged", "lower the learning rate"});
}

}  // namespace
