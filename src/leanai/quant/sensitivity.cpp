#include "leanai/quant/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/graph/passes/optimize_for_inference.h"
#include "leanai/graph/shape_inference.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/fisher.h"
#include "leanai/quant/plan_eval.h"
#include "leanai/quant/weight_rounding.h"

namespace leanai {
namespace {

// The layer alone: its own input as the graph input, its parameters, its
// activation post-ops (residual adds dropped: they need the other operand).
Graph single_layer_graph(const Graph& g, const Node& n, const Shape& sample_shape) {
  Graph s;
  std::vector<int> inputs = {s.add_input("input", sample_shape)};
  const int own = static_cast<int>(n.inputs.size()) - count_add_post_ops(parse_post_ops(n));
  for (int i = 1; i < own; ++i) {
    const Node& p = g.node(n.inputs[i]);
    inputs.push_back(s.add_param(p.name, g.params().at(p.name).value, false));
  }
  json attrs = n.attrs;
  if (attrs.contains("post_ops")) {
    json kept = json::array();
    for (const json& op : attrs["post_ops"])
      if (op.value("op", "") != "add") kept.push_back(op);
    attrs["post_ops"] = kept;
  }
  s.set_output(s.add(n.op, inputs, attrs, n.name));
  return s;
}

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
  const std::vector<Shape> shapes = infer_shapes(inf, 1);
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
    Shape sample(shapes[n.inputs[0]].begin() + 1, shapes[n.inputs[0]].end());
    const Graph alone = single_layer_graph(inf, n, sample);
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
      m.latency_ms = plan_latency_ms(p == Precision::fp32 ? alone : quantize_graph(alone, one), options.latency_batch,
                                     options.latency_seconds);
      ls.at.push_back(m);
    }
    report.layers.push_back(std::move(ls));
  }
  check(!report.layers.empty(), "sensitivity: the model has no conv2d or linear layer to quantize");
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
                      {"bytes", m.bytes}, {"latency_ms", m.latency_ms}});
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
      if (m.available) c.options.push_back({m.precision, std::max(0.0, -m.accuracy_change), m.bytes, m.latency_ms, m.kl});
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace leanai
