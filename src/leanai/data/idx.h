// IDX files, the format of MNIST and Fashion-MNIST: a 4-byte magic
// (0x00 0x00 <type code> <number of dims>), each dim a big-endian u32, then
// the values, big-endian, row-major. Files may be gzip-compressed or plain.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "leanai/core/tensor.h"
#include "leanai/data/dataset.h"

namespace leanai {

// Reads an IDX file into a tensor of the file's shape. Element types:
// 0x08 u8 -> u8, 0x09 i8 -> i8, 0x0B i16 -> i32 (widened: no i16 dtype),
// 0x0C i32 -> i32, 0x0D f32 -> f32, 0x0E f64 -> f32 (narrowed).
// Throws Error for a bad magic or type code, and when the data is shorter or
// longer than the header says.
Tensor read_idx(const std::string& path);

// Writes a u8, i8, i32 or f32 tensor as IDX; gzip-compressed when the path
// ends in ".gz".
void write_idx(const std::string& path, const Tensor& t);

// The normalization the PyTorch Fashion-MNIST reference uses.
constexpr float kFashionMnistMean = 0.2860f;
constexpr float kFashionMnistStd = 0.3530f;

struct IdxImageOptions {
  float mean = kFashionMnistMean;  // pixels become (x / 255 - mean) / std
  float std = kFashionMnistStd;
  int64_t num_classes = 0;  // 0: the largest label + 1
};

// Images (u8 {N, H, W} or {N, C, H, W}) and labels (integer {N}) as a
// classification dataset: features f32 {N, C, H, W} normalized, targets i64.
std::shared_ptr<InMemoryDataset> load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                                  const IdxImageOptions& options = {});

// Where the Debian package dataset-fashion-mnist installs its files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST's train (60000) or test (10000) split from a directory
// holding the standard file names (train-images-idx3-ubyte.gz, ...; plain
// files without ".gz" work too).
std::shared_ptr<InMemoryDataset> load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true,
                                                    const IdxImageOptions& options = {});

// "T-shirt/top", "Trouser", ... in class-id order.
const std::vector<std::string>& fashion_mnist_class_names();

// True when dir holds the four Fashion-MNIST/MNIST IDX files.
bool has_mnist_files(const std::string& dir);

}  // namespace leanai
