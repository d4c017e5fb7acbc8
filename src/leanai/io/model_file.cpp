#include "leanai/io/model_file.h"

#include <set>

#include "leanai/core/error.h"
#include "leanai/io/safetensors.h"

namespace leanai {
namespace {

constexpr const char* kFormat = "leanai-model";
constexpr const char* kVersion = "1";
constexpr const char* kOptimizerPrefix = "optimizer/";

std::map<std::string, std::string> metadata_for(const Graph& graph, const json& info) {
  return {{"format", kFormat}, {"version", kVersion}, {"graph", graph.to_json().dump()}, {"info", info.dump()}};
}

std::map<std::string, Tensor> param_tensors(const Graph& graph) {
  std::map<std::string, Tensor> tensors;
  for (auto& [name, p] : graph.params()) tensors[name] = p.value;
  return tensors;
}

json parse_field(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path) {
  auto it = meta.find(key);
  check(it != meta.end(), path + ": not a leanai model (no '" + key + "' in the safetensors metadata)");
  try {
    return json::parse(it->second);
  } catch (const json::parse_error&) {
    throw Error(path + ": the '" + key + "' metadata is not valid JSON; the file is corrupt");
  }
}

}  // namespace

void save_model(const std::string& path, const Graph& graph, const json& info) {
  save_safetensors(path, param_tensors(graph), metadata_for(graph, info));
}

void save_checkpoint(const std::string& path, const Graph& graph, const json& info,
                     const std::map<std::string, Tensor>& trainer_tensors, const json& trainer_state) {
  auto tensors = param_tensors(graph);
  for (auto& [name, t] : trainer_tensors) tensors[kOptimizerPrefix + name] = t;
  auto meta = metadata_for(graph, info);
  meta["checkpoint"] = trainer_state.dump();
  save_safetensors(path, tensors, meta);
}

static LoadedModel load_model_unchecked(const std::string& path);

LoadedModel load_model(const std::string& path) {
  try {
    return load_model_unchecked(path);
  } catch (const json::exception& e) {
    throw Error(path + ": the model metadata has an unexpected structure (" + std::string(e.what()) +
                "); the file is corrupt or not from this version of leanai");
  }
}

static LoadedModel load_model_unchecked(const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
  auto format = file.metadata.find("format");
  check(format != file.metadata.end() && format->second == kFormat,
        path + ": a safetensors file, but not a leanai model (metadata 'format' is not '" + kFormat + "')");
  check(file.metadata.count("version") && file.metadata.at("version") == kVersion,
        path + ": unsupported leanai model version '" + file.metadata["version"] + "' (this build reads " + kVersion + ")");
  json graph_json = parse_field(file.metadata, "graph", path);
  LoadedModel m;
  m.info = parse_field(file.metadata, "info", path);
  if (file.metadata.count("checkpoint")) m.trainer_state = parse_field(file.metadata, "checkpoint", path);

  std::map<std::string, Parameter> params;
  const json declared = graph_json.value("params", json::object());
  check(declared.is_object(), path + ": graph 'params' must be an object");
  for (auto& [name, t] : file.tensors) {
    if (name.rfind(kOptimizerPrefix, 0) == 0) {
      m.trainer_tensors[name.substr(std::string(kOptimizerPrefix).size())] = t;
      continue;
    }
    check(declared.contains(name), path + ": tensor '" + name + "' is not a parameter of the model's graph; the file is corrupt");
    const json& d = declared[name];
    const bool trainable = d.is_object() ? d.value("trainable", true) : true;
    // Quantized layers (quant/precision.h) keep frozen I8 / U8 (packed int4) / BF16 / F16 parameters.
    const bool quantized = !trainable && (t.dtype() == DType::i8 || t.dtype() == DType::u8 ||
                                          t.dtype() == DType::bf16 || t.dtype() == DType::f16);
    check(t.dtype() == DType::f32 || quantized, path + ": parameter '" + name + "' has dtype " + dtype_name(t.dtype()) +
                                                    "; expected F32 (I8, U8, BF16 or F16 only for frozen quantized parameters)");
    params[name] = Parameter{t, trainable};
  }
  for (auto& [name, d] : declared.items())
    check(params.count(name), path + ": parameter '" + name + "' is missing from the file; the file is truncated or corrupt");
  try {
    m.graph = Graph::from_json(graph_json, std::move(params));
  } catch (const Error& e) {
    throw Error(path + ": invalid model graph: " + e.what());
  } catch (const json::exception& e) {
    throw Error(path + ": invalid model graph (" + std::string(e.what()) + ")");
  }
  return m;
}

}  // namespace leanai
