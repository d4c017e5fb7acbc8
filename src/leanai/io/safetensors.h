// The safetensors model format (https://github.com/huggingface/safetensors):
//
//   u64 little-endian N | N bytes of JSON header | data section
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end)} (offsets relative to the data section) and may hold a
// "__metadata__" object of string -> string. Tensors lie back to back: their
// ranges cover the data section exactly, with no gaps and no overlaps.
//
//   save_safetensors("model.safetensors", {{"fc1.weight", w}}, {{"arch", "mlp"}});
//   SafetensorsFile f = load_safetensors("model.safetensors");
//   Tensor w = f.tensors.at("fc1.weight");
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "leanai/core/tensor.h"

namespace leanai {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes tensors (in name order, back to back) and metadata atomically: a
// failure leaves any previous file at path intact. The header is padded with
// spaces so the data section starts at a multiple of 8 bytes.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads and fully validates a file; every tensor is copied into its own
// contiguous, aligned Tensor. Throws Error naming the file (and tensor) on any
// malformed input.
SafetensorsFile load_safetensors(const std::string& path);

// The same from bytes in memory; name_for_errors starts every error message.
SafetensorsFile load_safetensors_from_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

}  // namespace leanai
