#include "leanai/graph/graph.h"

#include "leanai/core/error.h"
#include "leanai/graph/op.h"

namespace leanai {

int Graph::add_input(const std::string& name, const Shape& sample_shape, DType dtype) {
  check(input_id_or(name) < 0, "graph input '" + name + "' is defined twice");
  for (int64_t d : sample_shape)
    check(d >= 1 && d <= (int64_t{1} << 24), "graph input '" + name + "' has a bad dimension in " + shape_str(sample_shape));
  Node n;
  n.id = static_cast<int>(nodes_.size());
  n.op = "input";
  n.name = name;
  n.attrs["shape"] = sample_shape;
  n.attrs["dtype"] = dtype_name(dtype);
  nodes_.push_back(n);
  inputs_.push_back(n.id);
  return n.id;
}

int Graph::add_param(const std::string& name, Tensor value, bool trainable) {
  check(!params_.count(name), "parameter '" + name + "' is defined twice");
  check(value.defined(), "parameter '" + name + "' has no tensor");
  // Quantized layers hold I8 / BF16 / F16 parameters (quant/precision.h); training updates f32 ones only.
  check(!trainable || value.dtype() == DType::f32,
        "parameter '" + name + "' is " + dtype_name(value.dtype()) + ": only f32 parameters can be trainable");
  Node n;
  n.id = static_cast<int>(nodes_.size());
  n.op = "param";
  n.name = name;
  nodes_.push_back(n);
  params_[name] = Parameter{std::move(value), trainable};
  return n.id;
}

int Graph::add(const std::string& op, const std::vector<int>& inputs, json attrs, const std::string& name) {
  const OpInfo& info = find_op(op);
  const int count = static_cast<int>(inputs.size());
  check(count >= info.min_inputs && count <= info.max_inputs,
        "op '" + op + "' takes " + std::to_string(info.min_inputs) +
            (info.max_inputs != info.min_inputs ? " to " + std::to_string(info.max_inputs) : "") + " inputs, got " +
            std::to_string(count));
  for (int i : inputs)
    check(i >= 0 && i < static_cast<int>(nodes_.size()), "op '" + op + "': input node " + std::to_string(i) +
                                                              " does not exist yet (nodes must be added in order)");
  check(attrs.is_null() || attrs.is_object(), "op '" + op + "': attributes must be a JSON object");
  Node n;
  n.id = static_cast<int>(nodes_.size());
  n.op = op;
  n.name = name;
  n.inputs = inputs;
  n.attrs = attrs.is_null() ? json::object() : std::move(attrs);
  nodes_.push_back(std::move(n));
  return nodes_.back().id;
}

int Graph::input_id_or(const std::string& name) const {
  for (int id : inputs_)
    if (nodes_[id].name == name) return id;
  return -1;
}

int Graph::input_id(const std::string& name) const {
  int id = input_id_or(name);
  check(id >= 0, "graph has no input named '" + name + "'");
  return id;
}

Shape Graph::input_sample_shape(int node) const { return nodes_.at(node).attrs.at("shape").get<Shape>(); }

DType Graph::input_dtype(int node) const {
  return dtype_from_name(nodes_.at(node).attrs.value("dtype", std::string("F32")));
}

Parameter& Graph::param(const std::string& name) {
  auto it = params_.find(name);
  check(it != params_.end(), "graph has no parameter named '" + name + "'");
  return it->second;
}

int64_t Graph::num_trainable_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : params_)
    if (p.trainable) n += p.value.numel();
  return n;
}

json Graph::to_json() const {
  json nodes = json::array();
  for (const Node& n : nodes_) {
    json j = {{"op", n.op}};
    if (!n.name.empty()) j["name"] = n.name;
    if (!n.inputs.empty()) j["inputs"] = n.inputs;
    if (!n.attrs.empty()) j["attrs"] = n.attrs;
    nodes.push_back(j);
  }
  json params = json::object();
  for (auto& [name, p] : params_) params[name] = {{"shape", p.value.shape()}, {"trainable", p.trainable}};
  return {{"nodes", nodes}, {"output", output_}, {"params", params}};
}

Graph Graph::from_json(const json& j, std::map<std::string, Parameter> params) {
  check(j.is_object() && j.contains("nodes") && j["nodes"].is_array() && j.contains("output"),
        "graph JSON must be an object with 'nodes' (array) and 'output'");
  Graph g;
  const json& declared = j.value("params", json::object());
  for (const json& jn : j["nodes"]) {
    check(jn.is_object() && jn.contains("op") && jn["op"].is_string(), "graph JSON: every node needs an 'op' string");
    const std::string op = jn["op"];
    const std::string name = jn.value("name", std::string());
    if (op == "input") {
      check(jn.contains("attrs") && jn["attrs"].contains("shape"), "graph JSON: input '" + name + "' needs attrs.shape");
      g.add_input(name, jn["attrs"]["shape"].get<Shape>(),
                  dtype_from_name(jn["attrs"].value("dtype", std::string("F32"))));
    } else if (op == "param") {
      auto it = params.find(name);
      check(it != params.end(), "graph JSON names parameter '" + name + "' but no tensor of that name was given");
      if (declared.contains(name) && declared[name].contains("shape"))
        check(declared[name]["shape"].get<Shape>() == it->second.value.shape(),
              "parameter '" + name + "' has shape " + shape_str(it->second.value.shape()) + " but the graph declares " +
                  shape_str(declared[name]["shape"].get<Shape>()));
      g.add_param(name, it->second.value, it->second.trainable);
    } else {
      std::vector<int> inputs;
      if (jn.contains("inputs")) {
        check(jn["inputs"].is_array(), "graph JSON: node 'inputs' must be an array of node ids");
        for (const json& i : jn["inputs"]) {
          check(i.is_number_integer(), "graph JSON: node inputs must be integer node ids");
          inputs.push_back(i.get<int>());
        }
      }
      g.add(op, inputs, jn.value("attrs", json::object()), name);
    }
  }
  check(j["output"].is_number_integer(), "graph JSON: 'output' must be a node id");
  g.set_output(j["output"].get<int>());
  g.validate();
  return g;
}

void Graph::validate() const {
  check(!inputs_.empty(), "graph has no input");
  check(output_ >= 0 && output_ < static_cast<int>(nodes_.size()), "graph output is not set to an existing node");
  for (const Node& n : nodes_) {
    if (n.op == "param") check(params_.count(n.name) > 0, "parameter '" + n.name + "' has no tensor");
    for (int i : n.inputs) check(i < n.id, "graph is not in topological order at node " + std::to_string(n.id));
  }
}

}  // namespace leanai
