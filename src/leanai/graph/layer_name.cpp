#include "leanai/graph/layer_name.h"

namespace leanai {

std::string layer_name_of_weight(const std::string& weight_param) {
  constexpr std::string_view suffix = ".weight";
  return weight_param.ends_with(suffix) ? weight_param.substr(0, weight_param.size() - suffix.size()) : weight_param;
}

std::string layer_name(const Graph& g, const Node& n) {
  if ((n.op != "linear" && n.op != "conv2d") || n.inputs.size() < 2 || g.node(n.inputs[1]).op != "param") return "";
  return layer_name_of_weight(g.node(n.inputs[1]).name);
}

}  // namespace leanai
