#include "leanai/quant/quantize_graph.h"

#include "leanai/core/error.h"
#include "leanai/graph/passes/graph_rewrite.h"
#include "leanai/kernels/post_ops.h"
#include "leanai/quant/input_quant.h"
#include "leanai/quant/int4_blocks.h"

namespace leanai {
namespace {

std::string known_layers(const Graph& g) {
  std::string names;
  for (const Node& n : g.nodes())
    if (!layer_name(g, n).empty()) names += (names.empty() ? "" : ", ") + layer_name(g, n);
  return names.empty() ? "(none)" : names;
}

// b += (W - dequant(Wq)) . E[x] per output channel; for a convolution the
// mean of channel c stands for every position of the kernel window.
void correct_bias(const Tensor& w, const QuantizedWeights& q, const std::vector<float>& mean, int64_t groups,
                  Tensor& bias, const std::string& layer) {
  const int64_t out = w.dim(0), per = w.numel() / out;
  const int64_t window = w.rank() == 4 ? w.dim(2) * w.dim(3) : 1, cin = w.dim(1);
  check(static_cast<int64_t>(mean.size()) == cin * groups,
        "quantize: layer '" + layer + "': input_channel_mean has " + std::to_string(mean.size()) + " values, the layer reads " +
            std::to_string(cin * groups) + " channels");
  const float* wp = w.data<float>();
  const int8_t* qp = q.q.data<int8_t>();
  const float* s = q.scales.data<float>();
  float* b = bias.data<float>();
  for (int64_t o = 0; o < out; ++o) {
    const int64_t c0 = (o / (out / groups)) * cin;
    double delta = 0.0;
    for (int64_t i = 0; i < per; ++i)
      delta += (static_cast<double>(wp[o * per + i]) - static_cast<double>(qp[o * per + i]) * s[o]) * mean[c0 + i / window];
    b[o] += static_cast<float>(delta);
  }
}

class Quantizer {
 public:
  Quantizer(const Graph& g, const std::map<std::string, LayerQuant>& layers) : g_(g), layers_(layers), uses_(node_uses(g)) {
    remap_.assign(g.nodes().size(), -1);
  }

  Graph run() {
    std::map<std::string, int> found;
    for (const Node& n : g_.nodes())
      if (std::string name = layer_name(g_, n); !name.empty()) found[name] = n.id;
    for (const auto& [name, lq] : layers_) {
      check(found.count(name), "quantize: no linear or conv2d layer named '" + name + "'; the layers are " + known_layers(g_));
      check(uses_.count[g_.node(found[name]).inputs[1]] == 1,
            "quantize: layer '" + name + "' shares its weight with another node; untie it first");
    }
    for (const Node& n : g_.nodes()) {
      if (n.op == "param") continue;  // copied when first read, so replaced weights never enter
      const std::string name = layer_name(g_, n);
      auto it = name.empty() ? layers_.end() : layers_.find(name);
      remap_[n.id] = it == layers_.end() ? copy(n) : rewrite(n, name, it->second);
    }
    out_.set_output(mapped(g_.output()));
    out_.validate();
    return std::move(out_);
  }

 private:
  int mapped(int id) {
    if (remap_[id] < 0) remap_[id] = copy_node(out_, g_, g_.node(id), remap_);
    return remap_[id];
  }
  int copy(const Node& n) {
    if (n.op == "input") return copy_node(out_, g_, n, remap_);
    for (int i : n.inputs) mapped(i);
    return copy_node(out_, g_, n, remap_);
  }

  int rewrite(const Node& n, const std::string& name, const LayerQuant& lq) {
    const size_t own = n.inputs.size() - count_add_post_ops(parse_post_ops(n));
    const Parameter& wp = g_.params().at(g_.node(n.inputs[1]).name);
    const std::string w_name = g_.node(n.inputs[1]).name;
    check(wp.value.dtype() == DType::f32, "quantize: layer '" + name + "' is already " + dtype_name(wp.value.dtype()) +
                                              "; quantize the f32 model");
    json attrs = n.attrs;
    switch (lq.precision) {
      case Precision::fp32: return copy(n);
      case Precision::bf16:
      case Precision::fp16: {
        std::vector<int> inputs;
        for (int i : n.inputs) inputs.push_back(i == n.inputs[1] ? -1 : mapped(i));
        inputs[1] = out_.add_param(w_name, wp.value.to(lq.precision == Precision::bf16 ? DType::bf16 : DType::f16), false);
        if (lq.precision == Precision::bf16) attrs["compute"] = "bf16";
        return out_.add(n.op, inputs, attrs, n.name);
      }
      case Precision::int4: return rewrite_int4(n, name, lq, own);
      case Precision::int8: break;
    }
    check(lq.input.dtype == DType::u8 || lq.input.dtype == DType::i8,
          "quantize: layer '" + name + "': the input dtype must be u8 or i8");
    if (!lq.dynamic)
      check(std::isfinite(lq.input.scale) && lq.input.scale > 0 &&
                (lq.input.dtype == DType::u8 ? lq.input.zero_point >= 0 && lq.input.zero_point <= 255 : lq.input.zero_point == 0),
            "quantize: layer '" + name + "': static input params need scale > 0 and a zero point in range (u8: [0, 255], i8: 0)");
    QuantizedWeights q = quantize_weights_per_channel(wp.value);
    Tensor bias = own == 3 ? g_.params().at(g_.node(n.inputs[2]).name).value.clone() : Tensor::zeros({wp.value.dim(0)});
    if (!lq.input_channel_mean.empty())
      correct_bias(wp.value, q, lq.input_channel_mean, n.op == "conv2d" ? attr_int(n, "groups", 1) : 1, bias, name);
    // The old bias is not copied: the rewritten layer owns a (corrected) copy,
    // under the same name unless another node reads the old one too.
    const bool sole_bias = own == 3 && uses_.count[n.inputs[2]] == 1;
    const std::string b_name = sole_bias ? g_.node(n.inputs[2]).name : unused_param_name(g_, out_, name + ".bias");
    std::vector<int> qin = {mapped(n.inputs[0]), out_.add_param(w_name, q.q, false),
                            out_.add_param(unused_param_name(g_, out_, name + ".w_scale"), q.scales, false),
                            out_.add_param(b_name, bias, false)};
    for (size_t i = own; i < n.inputs.size(); ++i) qin.push_back(mapped(n.inputs[i]));
    attrs["input"] = lq.dynamic ? dynamic_input_attr(lq.input.dtype) : input_quant_attr(lq.input);
    return out_.add(n.op == "linear" ? "qlinear" : "qconv2d", qin, attrs, n.name);
  }

  // int4 weights (qlinear_w4): block-wise scales along the input axis, f32 activations.
  int rewrite_int4(const Node& n, const std::string& name, const LayerQuant& lq, size_t own) {
    const Tensor& w = g_.params().at(g_.node(n.inputs[1]).name).value;
    check(n.op == "linear", "quantize: layer '" + name + "': int4 is for linear layers only (it is " + n.op + ")");
    check(lq.int4_block == 32 || lq.int4_block == 64, "quantize: layer '" + name + "': the int4 block must be 32 or 64");
    check(w.dim(1) % lq.int4_block == 0, "quantize: layer '" + name + "': int4 needs the input width (" +
                                             std::to_string(w.dim(1)) + ") to be a multiple of the block (" +
                                             std::to_string(lq.int4_block) + ")");
    const Int4Weights q = quantize_int4_blocks(w, lq.int4_block);
    const bool sole_bias = own == 3 && uses_.count[n.inputs[2]] == 1;
    const std::string b_name = sole_bias ? g_.node(n.inputs[2]).name : unused_param_name(g_, out_, name + ".bias");
    Tensor bias = own == 3 ? g_.params().at(g_.node(n.inputs[2]).name).value.clone() : Tensor::zeros({w.dim(0)});
    std::vector<int> qin = {mapped(n.inputs[0]), out_.add_param(g_.node(n.inputs[1]).name, q.packed, false),
                            out_.add_param(unused_param_name(g_, out_, name + ".w_scale"), q.scales, false),
                            out_.add_param(b_name, bias, false)};
    for (size_t i = own; i < n.inputs.size(); ++i) qin.push_back(mapped(n.inputs[i]));
    json attrs = n.attrs;
    attrs["block"] = lq.int4_block;
    attrs["in"] = w.dim(1);
    return out_.add("qlinear_w4", qin, attrs, n.name);
  }

  const Graph& g_;
  const std::map<std::string, LayerQuant>& layers_;
  NodeUses uses_;
  std::vector<int> remap_;
  Graph out_;
};

}  // namespace

Graph quantize_graph(const Graph& g, const std::map<std::string, LayerQuant>& layers) {
  return Quantizer(g, layers).run();
}

}  // namespace leanai
