#include "leanai/quant/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/fisher.h"
#include "leanai/quant/plan_eval.h"
#include "leanai/quant/weight_rounding.h"
#include "leanai/runtime/benchmark.h"
#include "leanai/runtime/plan.h"

namespace leanai {
namespace {

bool int4_fits(const Node& n, const Tensor& w, int block) {
  return n.op == "linear" && w.shape().size() == 2 && w.shape()[1] % block == 0;
}

double fisher_score(const Tensor& fisher, const Tensor& w, Precision p, int block) {
  const Tensor r = round_trip_weights(w, p, block);
  const float *f = fisher.data<float>(), *a = w.data<float>(), *b = r.data<float>();
  double s = 0;
  for (int64_t i = 0; i < w.numel(); ++i) s += static_cast<double>(f[i]) * (a[i] - b[i]) * (a[i] - b[i]);
  return 0.5 * s;
}

// Latency in context: the whole model with every layer at int8 (the base),
// then with one layer moved to each other precision. A layer's time at p is
// the change that move makes plus an equal share of the base time, so the
// layers' times at the base add up to the model's, and region borders (a
// quantize or dequantize the move adds or removes) are charged to the layer
// that causes them. Timed alone, a layer would pay both borders every time.
//
// A move changes the model's time by a few percent, about what a shared
// machine drifts between two timings; so each move is timed side by side
// with the base, kLatencyPairs times in turn, and its change is the median of
// those pairs' differences. The solver never uses a precision that measured
// slower than a higher one, so a noisy sign here would cost a whole layer.
// A move to a higher precision that measures faster than the base is such a
// verdict against int8 (on a VM whose two cores sometimes run in turn, three
// pairs are few to bar a layer from int8 on); it is timed again with
// kConfirmPairs more pairs, and the median of all decides.
constexpr int kLatencyPairs = 3;
constexpr int kConfirmPairs = 6;

void measure_latency_in_context(const Graph& inf, const std::map<std::string, LayerQuant>& quant,
                                const SensitivityOptions& options, std::vector<LayerSensitivity>& layers) {
  std::map<std::string, LayerQuant> base;
  for (const LayerSensitivity& l : layers) {
    base[l.layer] = quant.at(l.layer);
    base[l.layer].precision = Precision::int8;
  }
  Plan base_plan(quantize_graph(inf, base));
  const Tensor x = random_model_input(base_plan.graph(), options.latency_batch);
  auto time = [&](Plan& plan, double seconds) {
    TimingSettings t;
    t.warmup_runs = 2;
    t.min_runs = 3;
    t.max_seconds = seconds;
    return time_runs([&] { plan.run(x); }, options.latency_batch, t).p50_ms;
  };
  const double t_base = time(base_plan, options.latency_seconds);
  const double share = t_base / static_cast<double>(layers.size());
  const double each = options.latency_seconds / kLatencyPairs;
  for (LayerSensitivity& l : layers) {
    for (PrecisionMeasure& m : l.at) {
      if (!m.available) continue;
      if (m.precision == Precision::int8) {
        m.latency_ms = share;
        continue;
      }
      std::map<std::string, LayerQuant> moved = base;
      moved[l.layer].precision = m.precision;
      Plan moved_plan(quantize_graph(inf, moved));
      std::vector<double> change;
      auto time_pairs = [&](int pairs) {
        for (int pair = 0; pair < pairs; ++pair) {  // which goes first alternates
          const double a = time(pair % 2 ? moved_plan : base_plan, each), b = time(pair % 2 ? base_plan : moved_plan, each);
          change.push_back(pair % 2 ? a - b : b - a);
        }
        std::sort(change.begin(), change.end());
        return change[change.size() / 2];
      };
      double median = time_pairs(kLatencyPairs);
      if (median < 0 && m.precision != Precision::int4) median = time_pairs(kConfirmPairs);
      m.latency_ms = std::max(0.0, median + share);
      m.latency_noise_ms = (change.back() - change.front()) / 2;
    }
  }
}

json finite(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }  // JSON has no infinity

}  // namespace

double layer_bytes(int64_t weights, int64_t out_channels, Precision p, int int4_block) {
  const double bias = 4.0 * static_cast<double>(out_channels);
  const double w = static_cast<double>(weights);
  switch (p) {
    case Precision::fp32: return 4 * w + bias;
    case Precision::bf16:
    case Precision::fp16: return 2 * w + bias;
    case Precision::int8: return w + bias + 4.0 * static_cast<double>(out_channels);  // + per-channel scales
    case Precision::int4: return w / 2 + bias + 4.0 * w / int4_block;                 // + one scale per block
  }
  return 4 * w + bias;
}

const PrecisionMeasure* LayerSensitivity::find(Precision p) const {
  for (const PrecisionMeasure& m : at)
    if (m.precision == p) return &m;
  return nullptr;
}

SensitivityReport analyze_sensitivity(const Graph& model, const std::map<std::string, LayerQuant>& quant,
                                      const Tensor& x, const Tensor& labels, const SensitivityOptions& options) {
  const Graph inf = optimize_for_inference(model);
  SensitivityReport report;
  report.samples = x.shape()[0];
  report.latency_batch = options.latency_batch;
  const Tensor ref = plan_logits(inf, x);
  report.fp32_accuracy = accuracy(ref, labels);
  // The Fisher needs gradients: a few hundred samples are enough for a ranking.
  const int64_t fisher_rows = std::min<int64_t>(x.shape()[0], 512);
  const auto fisher = fisher_diagonal(model, x.slice0(0, fisher_rows), labels.slice0(0, fisher_rows));

  for (const Node& n : inf.nodes()) {
    const std::string layer = layer_name(inf, n);
    if (layer.empty()) continue;
    const auto q = quant.find(layer);
    check(q != quant.end(), "sensitivity: no calibration for layer '" + layer + "'");
    const Tensor& w = inf.params().at(inf.node(n.inputs[1]).name).value;
    LayerSensitivity ls{layer, n.op, w.numel(), {}};
    const auto trained = model.params().find(layer + ".weight");
    const auto f = fisher.find(layer + ".weight");

    std::vector<Precision> precisions = {Precision::fp32};
    precisions.insert(precisions.end(), options.precisions.begin(), options.precisions.end());
    for (Precision p : precisions) {
      PrecisionMeasure m;
      m.precision = p;
      const int block = q->second.int4_block;
      if (p == Precision::int4 && !int4_fits(n, w, block)) {
        m.available = false;
        ls.at.push_back(m);
        continue;
      }
      m.bytes = layer_bytes(w.numel(), w.shape()[0], p, block);
      LayerQuant lq = q->second;
      lq.precision = p;
      const std::map<std::string, LayerQuant> one = {{layer, lq}};
      if (p != Precision::fp32) {
        const Tensor out = plan_logits(quantize_graph(inf, one), x);
        const OutputError e = compare_logits(ref, out);
        m.kl = e.kl;
        m.sqnr_db = e.sqnr_db;
        m.accuracy_change = 100.0 * (accuracy(out, labels) - report.fp32_accuracy);
      } else {
        m.sqnr_db = INFINITY;
      }
      if (trained != model.params().end() && f != fisher.end() && trained->second.value.shape() == w.shape())
        m.fisher = fisher_score(f->second, trained->second.value, p, block);
      ls.at.push_back(m);
    }
    report.layers.push_back(std::move(ls));
  }
  check(!report.layers.empty(), "sensitivity: the model has no conv2d or linear layer to quantize");
  measure_latency_in_context(inf, quant, options, report.layers);
  std::stable_sort(report.layers.begin(), report.layers.end(), [](const LayerSensitivity& a, const LayerSensitivity& b) {
    const PrecisionMeasure *ma = a.find(Precision::int8), *mb = b.find(Precision::int8);
    return (ma ? ma->kl : 0) > (mb ? mb->kl : 0);
  });
  return report;
}

json SensitivityReport::to_json() const {
  json layers_j = json::array();
  for (const LayerSensitivity& l : layers) {
    json at_j = json::array();
    for (const PrecisionMeasure& m : l.at)
      at_j.push_back({{"precision", precision_name(m.precision)}, {"available", m.available}, {"kl", m.kl},
                      {"sqnr_db", finite(m.sqnr_db)}, {"accuracy_change", m.accuracy_change}, {"fisher", m.fisher},
                      {"bytes", m.bytes}, {"latency_ms", m.latency_ms}, {"latency_noise_ms", m.latency_noise_ms}});
    layers_j.push_back({{"layer", l.layer}, {"op", l.op}, {"weights", l.weights}, {"precisions", at_j}});
  }
  return {{"fp32_accuracy", fp32_accuracy}, {"samples", samples}, {"latency_batch", latency_batch},
          {"layers", layers_j}};
}

SensitivityReport SensitivityReport::from_json(const json& j) {
  SensitivityReport r;
  try {
    r.fp32_accuracy = j.at("fp32_accuracy").get<double>();
    r.samples = j.at("samples").get<int64_t>();
    r.latency_batch = j.at("latency_batch").get<int64_t>();
    for (const json& l : j.at("layers")) {
      LayerSensitivity ls{l.at("layer").get<std::string>(), l.at("op").get<std::string>(), l.at("weights").get<int64_t>(), {}};
      for (const json& m : l.at("precisions")) {
        PrecisionMeasure pm;
        pm.precision = precision_from_name(m.at("precision").get<std::string>());
        pm.available = m.at("available").get<bool>();
        pm.kl = m.at("kl").get<double>();
        pm.sqnr_db = m.at("sqnr_db").is_null() ? INFINITY : m.at("sqnr_db").get<double>();
        pm.accuracy_change = m.at("accuracy_change").get<double>();
        pm.fisher = m.at("fisher").get<double>();
        pm.bytes = m.at("bytes").get<double>();
        pm.latency_ms = m.at("latency_ms").get<double>();
        pm.latency_noise_ms = m.value("latency_noise_ms", 0.0);  // absent from tables written before it
        ls.at.push_back(pm);
      }
      r.layers.push_back(std::move(ls));
    }
  } catch (const json::exception& e) {
    throw Error(std::string("sensitivity table is incomplete or mistyped (") + e.what() +
                "); run 'leanai sensitivity' again to write it");
  }
  return r;
}

SensitivityReport SensitivityReport::read(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "cannot open sensitivity table '" + path + "': check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error&) {
    throw Error("sensitivity table '" + path + "' is not valid JSON; write it again with 'leanai sensitivity --out'");
  }
  return from_json(j);
}

std::vector<LayerCosts> SensitivityReport::costs() const {
  std::vector<LayerCosts> out;
  for (const LayerSensitivity& l : layers) {
    LayerCosts c{l.layer, {}};
    for (const PrecisionMeasure& m : l.at)
      if (m.available)
        c.options.push_back({m.precision, std::max(0.0, -m.accuracy_change), m.bytes, m.latency_ms, m.kl, m.latency_noise_ms});
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace leanai
