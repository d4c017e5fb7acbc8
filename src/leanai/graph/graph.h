// Graph: the one model representation every tool reads and writes. A DAG of
// nodes in topological order (a node's inputs always come before it), plus the
// named parameter tensors the "param" nodes refer to.
//
//   Graph g;
//   int x = g.add_input("input", {784});                 // sample shape, no batch axis
//   int w = g.add_param("fc1.weight", Tensor::zeros({512, 784}));
//   int b = g.add_param("fc1.bias", Tensor::zeros({512}));
//   int h = g.add("linear", {x, w, b});
//   g.set_output(g.add("relu", {h}));
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leanai/core/tensor.h"

namespace leanai {

using json = nlohmann::json;

struct Node {
  int id = -1;
  std::string op;        // "input", "param", or a registered op name
  std::string name;      // for "input"/"param": the input or parameter name
  std::vector<int> inputs;
  json attrs = json::object();
};

struct Parameter {
  Tensor value;
  bool trainable = true;  // false for buffers such as batch-norm running statistics
};

class Graph {
 public:
  // An input fed at run time; `sample_shape` excludes the batch axis.
  int add_input(const std::string& name, const Shape& sample_shape, DType dtype = DType::f32);
  int add_param(const std::string& name, Tensor value, bool trainable = true);
  // Adds an op node; checks the op exists and its input count.
  int add(const std::string& op, const std::vector<int>& inputs, json attrs = json::object(),
          const std::string& name = "");
  void set_output(int node) { output_ = node; }

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_.at(id); }
  int output() const { return output_; }
  const std::vector<int>& inputs() const { return inputs_; }
  int input_id(const std::string& name) const;
  int input_id_or(const std::string& name) const;  // -1 when absent
  Shape input_sample_shape(int node) const;
  DType input_dtype(int node) const;

  std::map<std::string, Parameter>& params() { return params_; }
  const std::map<std::string, Parameter>& params() const { return params_; }
  Parameter& param(const std::string& name);
  int64_t num_trainable_parameters() const;

  // The structure (nodes, inputs, output, parameter names/shapes) as JSON;
  // parameter values travel separately (the model file stores them as tensors).
  json to_json() const;
  // Rebuilds the structure; `params` supplies every parameter the nodes name.
  static Graph from_json(const json& j, std::map<std::string, Parameter> params);
  // Checks ops, input counts, topological order and parameter presence.
  void validate() const;

 private:
  std::vector<Node> nodes_;
  std::vector<int> inputs_;
  std::map<std::string, Parameter> params_;
  int output_ = -1;
};

}  // namespace leanai
