// The leanai model file: a valid safetensors file whose tensors are the
// model's parameters (by name) and whose __metadata__ carries the graph and
// what a user of the model needs to know (task, classes, input preprocessing,
// training summary). A checkpoint is the same file plus the trainer's state
// (optimizer tensors under "optimizer/", counters and RNG in metadata), so a
// checkpoint also loads as a model.
//
//   save_model("fmnist.leanai", graph, {{"task", "classification"}, ...});
//   LoadedModel m = load_model("fmnist.leanai");   // m.graph, m.info
#pragma once
#include <map>
#include <string>

#include "leanai/graph/graph.h"

namespace leanai {

struct LoadedModel {
  Graph graph;
  json info;                                      // task, class_names, input, training...
  std::map<std::string, Tensor> trainer_tensors;  // checkpoints only
  json trainer_state;                             // checkpoints only; null otherwise
  bool is_checkpoint() const { return !trainer_state.is_null(); }
};

// Writes atomically (temp file, fsync, rename): an existing file is replaced
// only by a complete new one.
void save_model(const std::string& path, const Graph& graph, const json& info);
void save_checkpoint(const std::string& path, const Graph& graph, const json& info,
                     const std::map<std::string, Tensor>& trainer_tensors, const json& trainer_state);

// Loads and validates: the file, the graph, and that every parameter is
// present with the declared shape. Errors name the file and what is wrong.
LoadedModel load_model(const std::string& path);

}  // namespace leanai
