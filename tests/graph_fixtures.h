// Graphs the inference tests share: a small ResNet-style net (batch-norm with
// non-trivial running statistics, identity and projection shortcuts, dropout,
// global pooling) and a small MLP with GELU and leaky ReLU, seeded.
#pragma once
#include <cmath>
#include <string>

#include "leanai/core/rng.h"
#include "leanai/graph/graph.h"

namespace leanai::test_support {

inline Tensor random_tensor(const Shape& s, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale * rng.normal();
  return t;
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}

inline int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op == op;
  return n;
}

class NetBuilder {
 public:
  NetBuilder(Graph& g, uint64_t seed) : g_(g), seed_(seed) {}

  int param(const std::string& name, const Shape& s, float scale) {
    return g_.add_param(name, random_tensor(s, seed_++, scale));
  }
  int conv(const std::string& name, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride, bool bias) {
    std::vector<int> in = {x, param(name + ".weight", {cout, cin, k, k}, 1.0f / std::sqrt(float(cin * k * k)))};
    if (bias) in.push_back(param(name + ".bias", {cout}, 0.1f));
    return g_.add("conv2d", in, {{"stride", {stride, stride}}, {"padding", {k / 2, k / 2}}}, name);
  }
  int bn(const std::string& name, int x, int64_t c) {
    Tensor var = random_tensor({c}, seed_++, 0.3f);
    for (int64_t i = 0; i < c; ++i) var.data<float>()[i] = 0.5f + std::abs(var.data<float>()[i]);
    int gamma = g_.add_param(name + ".weight", random_tensor({c}, seed_++, 0.2f));
    for (int64_t i = 0; i < c; ++i) g_.params().at(name + ".weight").value.data<float>()[i] += 1.0f;
    int beta = param(name + ".bias", {c}, 0.1f);
    int mean = g_.add_param(name + ".running_mean", random_tensor({c}, seed_++, 0.2f), false);
    int v = g_.add_param(name + ".running_var", var, false);
    return g_.add("batchnorm", {x, gamma, beta, mean, v}, {{"eps", 1e-5}}, name);
  }
  int block(const std::string& name, int x, int64_t cin, int64_t cout, int64_t stride) {
    int y = g_.add("relu", {bn(name + ".bn1", conv(name + ".conv1", x, cin, cout, 3, stride, false), cout)});
    y = bn(name + ".bn2", conv(name + ".conv2", y, cout, cout, 3, 1, false), cout);
    int shortcut = x;
    if (stride != 1 || cin != cout) shortcut = bn(name + ".sbn", conv(name + ".sconv", x, cin, cout, 1, stride, false), cout);
    return g_.add("relu", {g_.add("add", {y, shortcut})});
  }

 private:
  Graph& g_;
  uint64_t seed_;
};

// input [3, 12, 12] -> stem conv-BN-ReLU (8) -> block(8) -> block(16, stride 2)
// -> global average pool -> flatten -> dropout -> linear(5)
inline Graph residual_net(uint64_t seed = 1) {
  Graph g;
  NetBuilder b(g, seed);
  int x = g.add_input("input", {3, 12, 12});
  int y = g.add("relu", {b.bn("bn", b.conv("stem", x, 3, 8, 3, 1, true), 8)});
  y = b.block("layer1", y, 8, 8, 1);
  y = b.block("layer2", y, 8, 16, 2);
  y = g.add("flatten", {g.add("global_avgpool", {y})});
  y = g.add("dropout", {y}, {{"p", 0.5}});
  int w = b.param("fc.weight", {5, 16}, 0.25f);
  int bias = b.param("fc.bias", {5}, 0.1f);
  g.set_output(g.add("linear", {y, w, bias}, {}, "fc"));
  return g;
}

// input [20] -> linear(32) -> BN -> gelu -> linear(16) -> leaky_relu -> linear(4) -> sigmoid
inline Graph activation_mlp(uint64_t seed = 2) {
  Graph g;
  NetBuilder b(g, seed);
  int x = g.add_input("input", {20});
  int y = g.add("linear", {x, b.param("fc1.weight", {32, 20}, 0.2f), b.param("fc1.bias", {32}, 0.1f)}, {}, "fc1");
  y = g.add("gelu", {b.bn("bn1", y, 32)});
  y = g.add("linear", {y, b.param("fc2.weight", {16, 32}, 0.2f), b.param("fc2.bias", {16}, 0.1f)}, {}, "fc2");
  y = g.add("leaky_relu", {y}, {{"alpha", 0.1}});
  y = g.add("linear", {y, b.param("fc3.weight", {4, 16}, 0.2f), b.param("fc3.bias", {4}, 0.1f)}, {}, "fc3");
  g.set_output(g.add("sigmoid", {y}));
  return g;
}

// input [256] -> linear(80) -> relu -> linear(10): a first layer of 80 KB,
// enough for leanai's packed batch-1 GEMM to split it over two threads.
inline Graph two_layer_mlp(uint64_t seed = 3) {
  Graph g;
  NetBuilder b(g, seed);
  int y = g.add_input("input", {256});
  y = g.add("relu", {g.add("linear", {y, b.param("fc1.weight", {80, 256}, 0.1f), b.param("fc1.bias", {80}, 0.1f)})});
  g.set_output(g.add("linear", {y, b.param("fc2.weight", {10, 80}, 0.1f), b.param("fc2.bias", {10}, 0.1f)}));
  return g;
}

// input [2, 10, 10] -> conv(6, 3x3) -> relu -> maxpool 2 -> conv(8, 3x3) -> relu
// -> flatten -> linear(4): the int8 region of the quantized runtime tests.
inline Graph small_cnn(uint64_t seed = 3) {
  Graph g;
  NetBuilder b(g, seed);
  int x = g.add_input("input", {2, 10, 10});
  int y = g.add("relu", {b.conv("conv1", x, 2, 6, 3, 1, true)});
  y = g.add("maxpool2d", {y}, {{"kernel", {2, 2}}});
  y = g.add("relu", {b.conv("conv2", y, 6, 8, 3, 1, true)});
  y = g.add("flatten", {y});
  int w = b.param("fc.weight", {4, 8 * 5 * 5}, 0.1f);
  g.set_output(g.add("linear", {y, w, b.param("fc.bias", {4}, 0.1f)}, {}, "fc"));
  return g;
}

}  // namespace leanai::test_support
