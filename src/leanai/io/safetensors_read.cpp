// Reading safetensors: every field of the untrusted header is checked before
// any byte of the data section is touched, so no input can make us read out
// of bounds, overflow a size, or build a tensor that disagrees with its bytes.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/io/safetensors.h"

namespace leanai {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping here");

using json = nlohmann::json;

// The reference reader's limit: a bigger header is a corrupt length field.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

// Names and values come from the file: keep error messages one printable line
// and of bounded length whatever they contain. Parsed JSON strings are valid
// UTF-8 and keep their non-ASCII characters; raw bytes (ascii_only) do not.
std::string printable(const std::string& s, size_t max_bytes = 120, bool ascii_only = false) {
  std::string out;
  for (unsigned char c : s) out += (c < 0x20 || c == 0x7f || (ascii_only && c >= 0x80)) ? '?' : static_cast<char>(c);
  if (out.size() > max_bytes) {
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
    out = out.substr(0, cut) + "...";
  }
  return out;
}

// Appends rather than `"'" + string`, which trips a GCC 12 -Wrestrict false positive.
std::string in_quotes(const std::string& s) { return std::string(1, '\'').append(printable(s)).append(1, '\''); }
std::string short_dump(const json& j) { return printable(j.dump(), 40); }
std::string range_str(uint64_t begin, uint64_t end) {
  return std::string("[").append(std::to_string(begin)).append(", ").append(std::to_string(end)).append(")");
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// nlohmann keeps the last of repeated keys silently; a repeated tensor name
// would hide a tensor, so repeated keys at any level are an error.
json parse_header_json(const std::string& file, const uint8_t* text, size_t size) {
  std::vector<std::set<std::string>> open_objects;
  std::string repeated;
  auto watch_keys = [&](int, json::parse_event_t event, json& value) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key && repeated.empty() &&
               !open_objects.back().insert(value.get<std::string>()).second) {
      repeated = value.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + size, watch_keys);
  } catch (const json::exception& e) {
    // e.what() is "[json.exception.<kind>] <reason>"; keep the reason.
    std::string reason = e.what();
    size_t bracket = reason.find("] ");
    if (bracket != std::string::npos) reason = reason.substr(bracket + 2);
    throw Error(file + ": header is not valid JSON (" + printable(reason, 200, true) +
                "); the file is corrupt or not a safetensors file");
  }
  check(repeated.empty(), file + ": header has the key " + in_quotes(repeated) +
                              " more than once; the file is corrupt (each name may appear only once)");
  check(header.is_object(), file + ": header must be a JSON object, got " + std::string(header.type_name()) +
                                "; the file is corrupt or not a safetensors file");
  return header;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& value) {
  check(value.is_object(), file + ": __metadata__ must be an object of string values, got " +
                               std::string(value.type_name()) + "; the file is corrupt");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    check(v.is_string(), file + ": __metadata__ value for key " + in_quotes(key) + " must be a string, got " +
                             std::string(v.type_name()) + " " + short_dump(v) + "; the file is corrupt");
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

DType parse_dtype(const std::string& where, const json& dtype) {
  check(dtype.is_string(), where + " dtype must be a string such as \"F32\", got " + std::string(dtype.type_name()) +
                               "; the file is corrupt");
  try {
    return dtype_from_name(dtype.get<std::string>());
  } catch (const Error&) {
    throw Error(where + " has dtype " + in_quotes(dtype.get<std::string>()) +
                ", which leanai cannot read (it reads F32, BF16, F16, I8, U8, I32, I64); convert the tensor first");
  }
}

// Dimensions must fit int64 and so must the product of the non-zero ones:
// Tensor computes strides from them even when a zero makes the tensor empty.
Shape parse_shape(const std::string& where, const json& shape) {
  check(shape.is_array(), where + " shape must be an array of non-negative integers, got " +
                              std::string(shape.type_name()) + "; the file is corrupt");
  Shape dims;
  int64_t product = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    check(d.is_number_unsigned(), where + " shape " + short_dump(shape) + " has dimension " + std::to_string(i) +
                                      " = " + short_dump(d) + "; dimensions must be non-negative integers; the file is corrupt");
    uint64_t v = d.get<uint64_t>();
    check(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
              !__builtin_mul_overflow(product, std::max<int64_t>(static_cast<int64_t>(v), 1), &product),
          where + " shape " + short_dump(shape) + " has too many elements (the count overflows 64 bits); the file is corrupt");
    dims.push_back(static_cast<int64_t>(v));
  }
  return dims;
}

TensorEntry parse_entry(const std::string& file, const std::string& name, const json& info, uint64_t data_size) {
  const std::string where = file + ": tensor " + in_quotes(name);
  check(info.is_object(), where + " must be an object with dtype, shape and data_offsets, got " +
                              std::string(info.type_name()) + "; the file is corrupt");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    check(info.contains(key), where + " has no \"" + key + "\" field; the file is corrupt");

  TensorEntry e;
  e.name = name;
  e.dtype = parse_dtype(where, info.at("dtype"));
  e.shape = parse_shape(where, info.at("shape"));

  const json& offsets = info.at("data_offsets");
  check(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(),
        where + " data_offsets must be two non-negative integers [begin, end], got " + short_dump(offsets) +
            "; the file is corrupt");
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  check(e.begin <= e.end, where + " data range " + range_str(e.begin, e.end) + " ends before it begins; the file is corrupt");
  check(e.end <= data_size, where + " data range " + range_str(e.begin, e.end) + " runs past the end of the data section (" +
                                std::to_string(data_size) + " bytes); the file is truncated or corrupt");

  // parse_shape bounded numel by int64; the byte count needs its own check.
  const std::string type = std::string(dtype_name(e.dtype)) + " " + shape_str(e.shape);
  uint64_t bytes = 0;
  check(!__builtin_mul_overflow(static_cast<uint64_t>(shape_numel(e.shape)), dtype_size(e.dtype), &bytes),
        where + " is " + type + ": its byte size overflows 64 bits; the file is corrupt");
  check(bytes == e.end - e.begin, where + " is " + type + " = " + std::to_string(bytes) + " bytes, but its data range " +
                                      range_str(e.begin, e.end) + " holds " + std::to_string(e.end - e.begin) +
                                      " bytes; the file is corrupt");
  return e;
}

// The spec: tensors tile the data section exactly, no gaps, no overlaps.
void check_tiling(const std::string& file, const std::vector<TensorEntry>& entries, uint64_t data_size) {
  std::vector<const TensorEntry*> order;
  for (const TensorEntry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* e : order) {
    if (e->begin < covered)
      throw Error(file + ": tensor " + in_quotes(e->name) + " data range " + range_str(e->begin, e->end) +
                  " overlaps tensor " + in_quotes(prev->name) + " data range " + range_str(prev->begin, prev->end) +
                  "; the file is corrupt");
    if (e->begin > covered)
      throw Error(file + ": gap in the data section: bytes " + range_str(covered, e->begin) + " belong to no tensor (" +
                  (prev ? "between tensor " + in_quotes(prev->name) + " and " : std::string("before ")) + "tensor " +
                  in_quotes(e->name) + "); the file is corrupt");
    covered = e->end;
    prev = e;
  }
  check(covered == data_size, file + ": the data section has " + std::to_string(data_size) +
                                  " bytes but the tensors cover only the first " + std::to_string(covered) +
                                  "; the file has trailing bytes or is corrupt");
}

Tensor copy_tensor(const std::string& file, const TensorEntry& e, const uint8_t* section) {
  try {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.raw(), section + e.begin, e.end - e.begin);
    return t;
  } catch (const std::bad_alloc&) {
    throw Error(file + ": out of memory loading tensor " + in_quotes(e.name) + " (" + std::to_string(e.end - e.begin) +
                " bytes); free memory or load a smaller model");
  }
}

// Closes a file descriptor / unmaps a mapping on every exit path.
struct FdGuard {
  int fd;
  ~FdGuard() { ::close(fd); }
};
struct MapGuard {
  void* addr;
  size_t size;
  ~MapGuard() { ::munmap(addr, size); }
};

}  // namespace

SafetensorsFile load_safetensors_from_memory(const uint8_t* data, size_t size, const std::string& file) {
  check(size >= 8, file + ": file is " + std::to_string(size) +
                       " bytes, too short for the 8-byte header length; the file is truncated or not a safetensors file");
  const uint64_t header_size = read_u64_le(data);
  check(header_size <= kMaxHeaderBytes, file + ": header length " + std::to_string(header_size) + " exceeds the " +
                                            std::to_string(kMaxHeaderBytes) +
                                            "-byte limit; the file is corrupt or not a safetensors file");
  check(header_size <= size - 8, file + ": header length " + std::to_string(header_size) +
                                     " runs past the end of the file (" + std::to_string(size) +
                                     " bytes); the file is truncated or corrupt");
  const json header = parse_header_json(file, data + 8, header_size);
  const uint8_t* section = data + 8 + header_size;
  const uint64_t data_size = size - 8 - header_size;

  SafetensorsFile out;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_null()) out.metadata = parse_metadata(file, value);  // the reference reads null as none
    } else {
      entries.push_back(parse_entry(file, key, value, data_size));
    }
  }
  check_tiling(file, entries, data_size);
  for (const TensorEntry& e : entries) out.tensors.emplace(e.name, copy_tensor(file, e, section));
  return out;
}

// Maps the file instead of reading it, so loading needs memory for the
// tensors only, not a second copy of the file.
SafetensorsFile load_safetensors(const std::string& path) {
  // O_NONBLOCK: opening a FIFO by mistake must fail below, not hang here.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    throw Error("cannot open '" + path + "': " + std::strerror(err) + "; check the path");
  }
  FdGuard fd_guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    throw Error("cannot read '" + path + "': " + std::strerror(err));
  }
  check(S_ISREG(st.st_mode), "'" + path + "' is not a regular file; give the path of a .safetensors file");
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) return load_safetensors_from_memory(nullptr, 0, path);
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    throw Error("cannot read '" + path + "': mapping it into memory failed: " + std::strerror(err));
  }
  MapGuard map_guard{addr, size};
  return load_safetensors_from_memory(static_cast<const uint8_t*>(addr), size, path);
}

}  // namespace leanai
