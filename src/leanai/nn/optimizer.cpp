#include "leanai/core/parallel.h"
#include "leanai/nn/optimizer.h"

#include <cmath>

#include "leanai/core/error.h"

namespace leanai {
namespace {


// The step count travels as an I64 tensor so resume stays exact at any length.
Tensor steps_tensor(int64_t steps) {
  Tensor t = Tensor::empty({1}, DType::i64);
  t.data<int64_t>()[0] = steps;
  return t;
}

int64_t steps_from(const Tensor& t) {
  check(t.dtype() == DType::i64 && t.numel() == 1, "optimizer state 'steps' must be one I64 value");
  return t.data<int64_t>()[0];
}

struct AdamCoeffs {
  float b1, b2, eps, wd, lr, step_size, bc2_sqrt;
  bool decoupled;
};

// One Adam update over n values. Built for several ISAs and picked at load
// time (ifunc): the package must run on any x86-64, and this loop is
// memory-bound, so wide loads matter more than anything else.
__attribute__((target_clones("avx512f", "avx2", "default")))
void adam_update(float* w, const float* g, float* m, float* v, int64_t n, AdamCoeffs c) {
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    if (c.decoupled) w[i] *= 1.0f - c.lr * c.wd;
    else gi += c.wd * w[i];
    m[i] = c.b1 * m[i] + (1.0f - c.b1) * gi;
    v[i] = c.b2 * v[i] + (1.0f - c.b2) * gi * gi;
    w[i] -= c.step_size * m[i] / (std::sqrt(v[i]) / c.bc2_sqrt + c.eps);
  }
}

class Sgd : public Optimizer {
 public:
  Sgd(const OptimizerConfig& c, std::vector<ParamRef> params) : c_(c), params_(std::move(params)) {
    lr_ = c.lr;
    check(!c.nesterov || c.momentum > 0.0f, "sgd: Nesterov needs momentum > 0");
    if (c.momentum > 0.0f)
      for (auto& p : params_) buf_[p.name] = Tensor::zeros(p.value.shape());
  }
  void step() override {
    const float mu = c_.momentum, wd = c_.weight_decay;
    for (auto& p : params_) {
      const float lr = lr_ * p.lr_scale;
      float* w = p.value.data<float>();
      const float* g = p.grad.data<float>();
      float* b = mu > 0.0f ? buf_[p.name].data<float>() : nullptr;
      const int64_t n = p.value.numel();
      const bool first = steps_ == 0;
      const bool nesterov = c_.nesterov;
      for_chunks(n, [=](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          float d = g[i] + wd * w[i];
          if (b) {
            b[i] = first ? d : mu * b[i] + d;  // PyTorch: the first step seeds the buffer
            d = nesterov ? d + mu * b[i] : b[i];
          }
          w[i] -= lr * d;
        }
      });
    }
    ++steps_;
  }
  std::map<std::string, Tensor> state() const override {
    std::map<std::string, Tensor> s;
    for (auto& [name, t] : buf_) s["momentum." + name] = t;
    s["steps"] = steps_tensor(steps_);
    return s;
  }
  void load_state(const std::map<std::string, Tensor>& s) override {
    for (auto& [name, t] : buf_) t.copy_from(s.at("momentum." + name));
    steps_ = steps_from(s.at("steps"));
  }

 private:
  OptimizerConfig c_;
  std::vector<ParamRef> params_;
  std::map<std::string, Tensor> buf_;
  int64_t steps_ = 0;
};

class Adam : public Optimizer {
 public:
  Adam(const OptimizerConfig& c, std::vector<ParamRef> params, bool decoupled)
      : c_(c), params_(std::move(params)), decoupled_(decoupled) {
    lr_ = c.lr;
    for (auto& p : params_) {
      m_[p.name] = Tensor::zeros(p.value.shape());
      v_[p.name] = Tensor::zeros(p.value.shape());
    }
  }
  void step() override {
    ++steps_;
    const float bc1 = 1.0f - static_cast<float>(std::pow(c_.beta1, steps_));
    const float bc2_sqrt = std::sqrt(1.0f - static_cast<float>(std::pow(c_.beta2, steps_)));
    for (auto& p : params_) {
      const float lr = lr_ * p.lr_scale;
      const AdamCoeffs k{c_.beta1, c_.beta2, c_.eps, c_.weight_decay, lr, lr / bc1, bc2_sqrt, decoupled_};
      float* w = p.value.data<float>();
      const float* g = p.grad.data<float>();
      float* m = m_[p.name].data<float>();
      float* v = v_[p.name].data<float>();
      const int64_t n = p.value.numel();
      for_chunks(n, [&](int64_t begin, int64_t end) {
        adam_update(w + begin, g + begin, m + begin, v + begin, end - begin, k);
      });
    }
  }
  std::map<std::string, Tensor> state() const override {
    std::map<std::string, Tensor> s;
    for (auto& [name, t] : m_) s["m." + name] = t;
    for (auto& [name, t] : v_) s["v." + name] = t;
    s["steps"] = steps_tensor(steps_);
    return s;
  }
  void load_state(const std::map<std::string, Tensor>& s) override {
    for (auto& [name, t] : m_) t.copy_from(s.at("m." + name));
    for (auto& [name, t] : v_) t.copy_from(s.at("v." + name));
    steps_ = steps_from(s.at("steps"));
  }

 private:
  OptimizerConfig c_;
  std::vector<ParamRef> params_;
  bool decoupled_;
  std::map<std::string, Tensor> m_, v_;
  int64_t steps_ = 0;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, std::vector<ParamRef> params) {
  check(c.lr > 0.0f && std::isfinite(c.lr), "learning rate must be a positive number");
  check(c.weight_decay >= 0.0f, "weight decay must be >= 0");
  check(c.momentum >= 0.0f && c.momentum < 1.0f, "momentum must be in [0, 1)");
  check(c.beta1 >= 0.0f && c.beta1 < 1.0f && c.beta2 >= 0.0f && c.beta2 < 1.0f, "Adam betas must be in [0, 1)");
  for (auto& [suffix, scale] : c.lr_scale)
    check(scale > 0.0f && std::isfinite(scale), "learning-rate scale for '*" + suffix + "' must be a positive number");
  for (ParamRef& p : params) {
    size_t matched = 0;
    for (auto& [suffix, scale] : c.lr_scale)
      if (p.name.ends_with(suffix) && suffix.size() >= matched) {
        matched = suffix.size();
        p.lr_scale = scale;
      }
  }
  if (c.kind == "sgd") return std::make_unique<Sgd>(c, std::move(params));
  if (c.kind == "adam") return std::make_unique<Adam>(c, std::move(params), false);
  if (c.kind == "adamw") return std::make_unique<Adam>(c, std::move(params), true);
  throw Error("unknown optimizer '" + c.kind + "': use sgd, adam or adamw");
}

double clip_grad_norm(std::vector<ParamRef>& params, double max_norm) {
  double sq = 0.0;
  for (auto& p : params) {
    const float* g = p.grad.data<float>();
    for (int64_t i = 0, n = p.grad.numel(); i < n; ++i) sq += static_cast<double>(g[i]) * g[i];
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0.0 && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));
    for (auto& p : params) {
      float* g = p.grad.data<float>();
      for (int64_t i = 0, n = p.grad.numel(); i < n; ++i) g[i] *= scale;
    }
  }
  return norm;
}

}  // namespace leanai
