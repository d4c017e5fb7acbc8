#include "leanai/quant/calibrate_graph.h"

#include <algorithm>
#include <memory>

#include "leanai/core/error.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/layer_name.h"
#include "leanai/graph/op.h"

namespace leanai {
namespace {

struct Layer {
  const Node* node;
  std::string name;
  ActivationHistogram hist;
  std::vector<std::pair<CalibrationMethod, ClipRange>> candidates;
  std::vector<double> mse;  // per candidate, summed over eval batches
};

// graph/layer_name.h's name; a layer whose weight is computed is named by its node.
std::string calibrated_layer_name(const Graph& g, const Node& n) {
  const Node& w = g.node(n.inputs[1]);
  if (w.op != "param") return n.name.empty() ? n.op + "_" + std::to_string(n.id) : n.name;
  return layer_name_of_weight(w.name);
}

Tensor fake_quantize(const Tensor& x, const QuantParams& p) {
  Tensor out = Tensor::empty(x.shape());
  const Tensor src = x.is_contiguous() ? x : x.clone();
  const float* s = src.data<float>();
  float* d = out.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) d[i] = dequantize_value(quantize_value(s[i], p), p);
  return out;
}

double mean_squared_error(const Tensor& a, const Tensor& b) {
  double sum = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a.data<float>()[i]) - b.data<float>()[i];
    sum += d * d;
  }
  return sum / static_cast<double>(a.numel());
}

// The layer's output for each candidate's fake-quantized input, against the
// float output the Executor computed.
void measure(Layer& l, const Executor& ex) {
  const Node& n = *l.node;
  std::vector<Shape> shapes;
  Inputs inputs;
  for (int i : n.inputs) {
    shapes.push_back(ex.value(i).shape());
    inputs.push_back(&ex.value(i));
  }
  std::unique_ptr<OpKernel> kernel = find_op(n.op).make(n);
  const Shape out_shape = kernel->prepare(shapes, false);
  Tensor out = Tensor::empty(out_shape);
  RunContext ctx;
  for (size_t c = 0; c < l.candidates.size(); ++c) {
    const Tensor xq = fake_quantize(ex.value(n.inputs[0]), l.candidates[c].second.params);
    inputs[0] = &xq;
    kernel->forward(inputs, out, ctx);
    l.mse[c] += mean_squared_error(out, ex.value(n.id));
  }
}

// The candidate layer l takes. Layers reading the same tensor see the same
// histogram, so candidate c is the same range for each of them; they all take
// the one whose output error, relative to each layer's own best, adds up
// least. One range for the tensor lets the runtime quantize it once for all
// of its readers (a ResNet block's input feeds conv1 and the shortcut).
size_t shared_choice(const std::vector<Layer>& layers, const Layer& l) {
  std::vector<double> excess(l.candidates.size(), 0.0);
  for (const Layer& other : layers) {
    if (other.node->inputs[0] != l.node->inputs[0]) continue;
    const double own_best = *std::min_element(other.mse.begin(), other.mse.end());
    for (size_t c = 0; c < excess.size(); ++c)
      excess[c] += other.mse[c] <= own_best ? 0.0 : (other.mse[c] - own_best) / std::max(own_best, 1e-30);
  }
  return static_cast<size_t>(std::min_element(excess.begin(), excess.end()) - excess.begin());
}

}  // namespace

std::vector<LayerCalibration> calibrate_graph(const Graph& graph, const std::vector<Tensor>& batches,
                                              const CalibrationOptions& options) {
  check(!batches.empty(), "calibrate: no calibration batches; give at least one");
  check(graph.inputs().size() == 1, "calibrate: the graph must have exactly one input, it has " +
                                        std::to_string(graph.inputs().size()));
  check(options.eval_batches >= 1, "calibrate: eval_batches must be >= 1");
  std::vector<CalibrationMethod> methods = calibration_methods();
  if (options.method != "auto") methods = {calibration_method_from_name(options.method)};

  Graph g = graph;  // the Executor needs a mutable graph; parameters are shared, not copied
  Executor ex(g);
  std::vector<Layer> layers;
  for (const Node& n : g.nodes())
    if ((n.op == "conv2d" || n.op == "linear") && n.inputs.size() >= 2)
      layers.push_back({&n, calibrated_layer_name(g, n), ActivationHistogram(options.bins), {}, {}});
  if (layers.empty()) return {};

  for (const Tensor& batch : batches) {
    ex.forward({batch});
    for (Layer& l : layers) l.hist.add(ex.value(l.node->inputs[0]));
  }
  for (Layer& l : layers) {
    for (CalibrationMethod m : methods) l.candidates.push_back({m, calibrate_range(l.hist, m, options.calibrator)});
    l.mse.assign(methods.size(), 0.0);
  }
  const size_t evals = std::min(batches.size(), static_cast<size_t>(options.eval_batches));
  for (size_t b = 0; b < evals; ++b) {
    ex.forward({batches[b]});
    for (Layer& l : layers) measure(l, ex);
  }

  std::vector<LayerCalibration> result;
  for (Layer& l : layers) {
    const size_t best = shared_choice(layers, l);
    LayerCalibration r;
    r.layer = l.name;
    r.params = l.candidates[best].second.params;
    r.method = calibration_method_name(l.candidates[best].first);
    for (size_t c = 0; c < l.candidates.size(); ++c)
      r.output_mse[calibration_method_name(l.candidates[c].first)] = l.mse[c] / static_cast<double>(evals);
    r.channel_mean = l.hist.channel_mean();
    r.min = l.hist.min();
    r.max = l.hist.max();
    result.push_back(std::move(r));
  }
  return result;
}

}  // namespace leanai
