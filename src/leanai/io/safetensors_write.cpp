// Writing safetensors: header keys in the reference writer's order ("dtype",
// "shape", "data_offsets"), tensors back to back in name order, header padded
// with spaces so the data section starts 8-byte aligned.
#include <bit>
#include <nlohmann/json.hpp>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/io/atomic_file.h"
#include "leanai/io/safetensors.h"

namespace leanai {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping here");

// ordered_json keeps insertion order, so our bytes match the reference writer's.
using ordered_json = nlohmann::ordered_json;

std::string header_text(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    ordered_json info = ordered_json::object();
    info["dtype"] = dtype_name(t.dtype());
    info["shape"] = t.shape();
    info["data_offsets"] = {offset, offset + t.nbytes()};
    offset += t.nbytes();
    header[name] = std::move(info);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {
    throw Error("cannot write '" + path + "': a tensor name or metadata string is not valid UTF-8; use UTF-8 text");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Tensor>> ordered;
  for (const auto& [name, t] : tensors) {
    check(name != "__metadata__", "cannot write '" + path +
                                      "': '__metadata__' is reserved for metadata in safetensors; rename the tensor");
    check(t.defined(), "cannot write '" + path + "': tensor '" + name + "' is undefined (default-constructed); give it data");
    ordered.emplace_back(name, t.is_contiguous() ? t : t.clone());
  }
  const std::string header = header_text(path, ordered, metadata);

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  write_file_atomic(path, [&](std::FILE* f) {
    write_bytes(f, length, sizeof(length), path);
    write_bytes(f, header.data(), header.size(), path);
    for (const auto& [name, t] : ordered) write_bytes(f, t.raw(), t.nbytes(), path);
  });
}

}  // namespace leanai
