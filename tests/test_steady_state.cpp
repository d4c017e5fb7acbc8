// A training step in steady state creates no buffers: activations, gradients,
// optimizer moments, oneDNN workspaces and scratchpads, and the loader's
// batches are all created in the first epoch and reused after it.
#include <gtest/gtest.h>

#include "leanai/data/dataset.h"
#include "leanai/nn/models.h"
#include "leanai/nn/sparse_training.h"
#include "leanai/nn/trainer.h"

namespace leanai {
namespace {

std::shared_ptr<InMemoryDataset> synthetic_images(int64_t n) {
  Rng rng(3);
  Tensor x = Tensor::empty({n, 1, 12, 12});
  Tensor y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = static_cast<int64_t>(rng.below(4));
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, 4);
}

void expect_no_buffers_after_first_epoch(Graph model, SparseTraining* sparse = nullptr) {
  auto data = synthetic_images(300);  // 300 = 4 full batches of 64 + a partial one
  TrainConfig cfg;
  cfg.batch_size = 64;
  cfg.epochs = 3;
  if (sparse) {
    model = sparse->gate(model, 0);
    sparse->configure(cfg);
  }
  Trainer trainer(model, Task::classification, 4, cfg);
  if (sparse) trainer.before_step = [&](int64_t step) { sparse->before_step(model, step); };
  trainer.train_epoch(data);
  const int64_t after_first = Buffer::created();
  trainer.train_epoch(data);
  trainer.train_epoch(data);
  EXPECT_EQ(Buffer::created(), after_first) << "epochs 2 and 3 created buffers";
}

TEST(SteadyState, MlpStepsCreateNoBuffers) {
  expect_no_buffers_after_first_epoch(build_preset("mlp", {1, 12, 12}, 4, 0));
}

TEST(SteadyState, ConvBatchNormDropoutStepsCreateNoBuffers) {
  json spec = json::parse(R"({"layers": [
      {"type": "conv2d", "out": 16, "kernel": 3, "padding": 1}, {"type": "batchnorm"}, {"type": "relu"},
      {"type": "maxpool2d", "kernel": 2},
      {"type": "conv2d", "out": 16, "kernel": 3}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
      {"type": "flatten"}, {"type": "dropout", "p": 0.2}, {"type": "linear"}]})");
  expect_no_buffers_after_first_epoch(build_from_spec(spec, {1, 12, 12}, 4, 0));
}

// Dynamic sparsity: the l0 gates' sampling, penalty and controller, and the
// block-gated layers' routing, grouping and per-block GEMMs reuse their buffers.
TEST(SteadyState, L0GatedStepsCreateNoBuffers) {
  SparseTraining l0("l0", 0.7, 10);
  expect_no_buffers_after_first_epoch(build_preset("mlp", {1, 12, 12}, 4, 0), &l0);
}

TEST(SteadyState, InputGatedStepsCreateNoBuffers) {
  SparseTraining input("input", 0.7, 0);
  expect_no_buffers_after_first_epoch(build_preset("mlp", {1, 12, 12}, 4, 0), &input);
}

}  // namespace
}  // namespace leanai
