// How layers are named across passes: a linear or conv2d layer is called by
// its weight parameter's name without ".weight" ("conv1.weight" -> "conv1").
// Parameter names survive every pass, so the name does too; quantization
// plans, calibration records and --dense-layers all use it.
#pragma once
#include <string>

#include "leanai/graph/graph.h"

namespace leanai {

// "conv1.weight" -> "conv1"; a name without the suffix is returned as it is.
std::string layer_name_of_weight(const std::string& weight_param);

// The name of a linear / conv2d node whose weight is a parameter, else "".
std::string layer_name(const Graph& g, const Node& n);

}  // namespace leanai
