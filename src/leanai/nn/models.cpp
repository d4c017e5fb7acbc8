#include "leanai/nn/models.h"

#include <fstream>
#include <set>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/nn/model_builder.h"

namespace leanai {

std::vector<std::string> preset_names() { return {"mlp", "mlp-moe", "cnn", "cnn-bn", "resnet"}; }

bool is_preset(const std::string& name) {
  for (const auto& p : preset_names())
    if (p == name) return true;
  return false;
}

static void need_image(const std::string& preset, const Shape& s) {
  check(s.size() == 3, "preset '" + preset + "' needs image input [C, H, W], but the data has samples of shape " +
                           shape_str(s) + "; use 'mlp' or a JSON spec for tabular data");
}

Graph build_preset(const std::string& name, const Shape& sample_shape, int64_t num_outputs, uint64_t seed) {
  ModelBuilder b(sample_shape, seed);
  if (sample_shape.size() != 1 && (name == "mlp" || name == "mlp-moe")) b.flatten();
  if (name == "mlp") {
    b.linear(512).activation("relu").linear(256).activation("relu").linear(num_outputs);
  } else if (name == "mlp-moe") {
    // DeepSeekMoE-style middle block: 16 fine-grained experts (256 -> 64 -> 256),
    // 2 routed per sample plus 1 shared, so each sample runs 3 of 17 expert MLPs.
    b.linear(256).activation("relu").moe(16, 2, 64, 1).activation("relu").linear(num_outputs);
  } else if (name == "cnn") {
    need_image(name, sample_shape);
    b.conv2d(32, 3).activation("relu").maxpool2d(2);
    b.conv2d(64, 3).activation("relu").maxpool2d(2);
    b.flatten().linear(128).activation("relu").linear(num_outputs);
  } else if (name == "cnn-bn") {
    need_image(name, sample_shape);
    b.conv2d(32, 3, 1, 1, 1, 1, false).batchnorm().activation("relu").maxpool2d(2);
    b.conv2d(64, 3, 1, 1, 1, 1, false).batchnorm().activation("relu").maxpool2d(2);
    b.flatten().linear(256, false).batchnorm().activation("relu").dropout(0.3).linear(num_outputs);
  } else if (name == "resnet") {
    // ResNet-8 for small images: a stem and three basic blocks (16, 32, 64 channels).
    need_image(name, sample_shape);
    b.conv2d(16, 3, 1, 1, 1, 1, false).batchnorm().activation("relu");
    b.residual_block(16).residual_block(32, 2).residual_block(64, 2);
    b.global_avgpool().flatten().linear(num_outputs);
  } else {
    std::string known;
    for (const auto& p : preset_names()) known += (known.empty() ? "" : ", ") + p;
    throw Error("unknown model preset '" + name + "'; presets: " + known + " (or give a JSON spec file)");
  }
  return b.finish();
}

namespace {

// Reads an integer field with a default, rejecting wrong types and ranges.
int64_t int_field(const json& layer, const std::string& key, int64_t fallback, int64_t min, const std::string& where) {
  if (!layer.contains(key)) return fallback;
  check(layer[key].is_number_integer(), where + ": '" + key + "' must be an integer");
  int64_t v = layer[key].get<int64_t>();
  constexpr int64_t kMax = int64_t{1} << 20;
  check(v >= min && v <= kMax, where + ": '" + key + "' must be >= " + std::to_string(min) + " and <= " + std::to_string(kMax));
  return v;
}

double float_field(const json& layer, const std::string& key, double fallback, const std::string& where) {
  if (!layer.contains(key)) return fallback;
  check(layer[key].is_number(), where + ": '" + key + "' must be a number");
  return layer[key].get<double>();
}

const std::map<std::string, std::set<std::string>>& layer_keys() {
  static const std::map<std::string, std::set<std::string>> keys = {
      {"linear", {"out", "bias"}},
      {"conv2d", {"out", "kernel", "stride", "padding", "dilation", "groups", "bias"}},
      {"batchnorm", {"eps", "momentum"}},
      {"layernorm", {"eps"}},
      {"relu", {}}, {"gelu", {}}, {"sigmoid", {}}, {"tanh", {}}, {"leaky_relu", {}},
      {"maxpool2d", {"kernel", "stride", "padding"}},
      {"avgpool2d", {"kernel", "stride", "padding"}},
      {"global_avgpool", {}}, {"flatten", {}}, {"softmax", {}},
      {"dropout", {"p"}}, {"gate", {"sparsity"}},
      {"moe", {"experts", "top_k", "hidden", "shared", "affinity", "bias_update_speed", "balance_loss_weight",
               "capacity_factor"}}};
  return keys;
}

}  // namespace

Graph build_from_spec(const json& spec, const Shape& sample_shape, int64_t num_outputs, uint64_t seed) {
  check(spec.is_object() && spec.contains("layers") && spec["layers"].is_array() && !spec["layers"].empty(),
        "model spec must be an object with a non-empty 'layers' array");
  for (auto& [key, value] : spec.items())
    check(key == "layers" || key == "name", "model spec: unknown key '" + key + "' (expected 'layers', 'name')");
  ModelBuilder b(sample_shape, seed);
  const json& layers = spec["layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& layer = layers[i];
    const std::string where = "model spec layer " + std::to_string(i);
    check(layer.is_object() && layer.contains("type") && layer["type"].is_string(), where + ": needs a 'type' string");
    const std::string type = layer["type"];
    auto known = layer_keys().find(type);
    if (known == layer_keys().end()) {
      std::string names;
      for (auto& [k, v] : layer_keys()) names += (names.empty() ? "" : ", ") + k;
      throw Error(where + ": unknown layer type '" + type + "'; known: " + names);
    }
    for (auto& [key, value] : layer.items())
      check(key == "type" || known->second.count(key), where + " (" + type + "): unknown key '" + key + "'");
    check(!layer.contains("bias") || layer["bias"].is_boolean(), where + ": 'bias' must be true or false");
    const bool bias = !layer.contains("bias") || layer["bias"].get<bool>();
    try {
      if (type == "linear") {
        const bool last = i + 1 == layers.size();
        check(layer.contains("out") || last, where + ": linear needs 'out' (only the last layer may omit it)");
        b.linear(int_field(layer, "out", num_outputs, 1, where), bias);
      } else if (type == "conv2d") {
        check(layer.contains("out") && layer.contains("kernel"), where + ": conv2d needs 'out' and 'kernel'");
        b.conv2d(int_field(layer, "out", 1, 1, where), int_field(layer, "kernel", 3, 1, where),
                 int_field(layer, "stride", 1, 1, where), int_field(layer, "padding", 0, 0, where),
                 int_field(layer, "dilation", 1, 1, where), int_field(layer, "groups", 1, 1, where), bias);
      } else if (type == "batchnorm") {
        b.batchnorm(float_field(layer, "eps", 1e-5, where), float_field(layer, "momentum", 0.1, where));
      } else if (type == "layernorm") {
        b.layernorm(float_field(layer, "eps", 1e-5, where));
      } else if (type == "maxpool2d" || type == "avgpool2d") {
        int64_t k = int_field(layer, "kernel", 2, 1, where);
        int64_t s = int_field(layer, "stride", k, 1, where);
        int64_t p = int_field(layer, "padding", 0, 0, where);
        type == "maxpool2d" ? b.maxpool2d(k, s, p) : b.avgpool2d(k, s, p);
      } else if (type == "global_avgpool") {
        b.global_avgpool();
      } else if (type == "flatten") {
        b.flatten();
      } else if (type == "dropout") {
        double p = float_field(layer, "p", 0.5, where);
        check(p >= 0.0 && p < 1.0, where + ": dropout 'p' must be in [0, 1)");
        b.dropout(p);
      } else if (type == "gate") {
        check(layer.contains("sparsity"), where + ": gate needs 'sparsity' (the share of neurons switched off, in [0, 1))");
        const double s = float_field(layer, "sparsity", 0.0, where);
        check(s >= 0.0 && s < 1.0, where + ": gate 'sparsity' must be in [0, 1)");
        b.gate(s);
      } else if (type == "softmax") {
        b.softmax();
      } else if (type == "moe") {
        check(layer.contains("experts") && layer.contains("hidden"), where + ": moe needs 'experts' and 'hidden'");
        check(!layer.contains("affinity") || layer["affinity"].is_string(), where + ": 'affinity' must be a string");
        MoeOptions options;
        options.bias_update_speed = float_field(layer, "bias_update_speed", options.bias_update_speed, where);
        options.balance_loss_weight = float_field(layer, "balance_loss_weight", options.balance_loss_weight, where);
        options.capacity_factor = float_field(layer, "capacity_factor", options.capacity_factor, where);
        b.moe(int_field(layer, "experts", 1, 1, where), int_field(layer, "top_k", 2, 1, where),
              int_field(layer, "hidden", 1, 1, where), int_field(layer, "shared", 0, 0, where),
              layer.value("affinity", std::string("sigmoid")), options);
      } else {
        b.activation(type);
      }
    } catch (const Error& e) {
      const std::string msg = e.what();
      throw Error(msg.rfind("model spec", 0) == 0 ? msg : where + " (" + type + "): " + msg);
    }
  }
  check(b.shape() == Shape{num_outputs}, "model spec ends with sample shape " + shape_str(b.shape()) +
                                             " but the data has " + std::to_string(num_outputs) +
                                             " outputs; end with a linear layer without 'out'");
  return b.finish();
}

json read_spec_file(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), "cannot open model spec '" + path + "': check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw Error("model spec '" + path + "' is not valid JSON (" + std::string(e.what()) + ")");
  }
}

}  // namespace leanai
