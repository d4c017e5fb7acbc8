#include "leanai/data/idx.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/data/gz_file.h"

namespace leanai {

namespace {

struct IdxType {
  uint8_t code;
  const char* name;
  size_t file_bytes;  // bytes per value in the file
  DType dtype;        // what we return
};

constexpr IdxType kIdxTypes[] = {
    {0x08, "u8", 1, DType::u8},   {0x09, "i8", 1, DType::i8},   {0x0B, "i16", 2, DType::i32},
    {0x0C, "i32", 4, DType::i32}, {0x0D, "f32", 4, DType::f32}, {0x0E, "f64", 8, DType::f32},
};

// No real IDX file is near this; a header claiming more is corrupt.
constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 36;

uint32_t be_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint64_t be_u64(const uint8_t* p) { return (uint64_t{be_u32(p)} << 32) | be_u32(p + 4); }

std::string dims_str(const Shape& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

// Reads exactly `want` bytes, growing the buffer with the data actually read,
// so a header that claims too much cannot make us allocate it up front.
std::vector<uint8_t> read_payload(GzReader& in, uint64_t want) {
  std::vector<uint8_t> data;
  size_t filled = 0;
  while (filled < want) {
    data.resize(std::min<uint64_t>(want, std::max<size_t>(filled * 2, size_t{1} << 20)));
    const size_t got = in.read(data.data() + filled, data.size() - filled);
    filled += got;
    if (filled < data.size()) break;
  }
  data.resize(filled);
  return data;
}

// Counts what is left in the file (trailing bytes after the declared data).
uint64_t count_rest(GzReader& in) {
  uint64_t total = 0;
  std::vector<char> sink(1 << 16);
  while (size_t got = in.read(sink.data(), sink.size())) total += got;
  return total;
}

Tensor decode_values(const IdxType& type, const Shape& dims, const std::vector<uint8_t>& raw) {
  Tensor t = Tensor::empty(dims, type.dtype);
  const int64_t n = t.numel();
  const uint8_t* p = raw.data();
  switch (type.code) {
    case 0x08: case 0x09: std::memcpy(t.raw(), p, n); break;
    case 0x0B:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int16_t>((p[2 * i] << 8) | p[2 * i + 1]);
      break;
    case 0x0C:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int32_t>(be_u32(p + 4 * i));
      break;
    case 0x0D:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = be_u32(p + 4 * i);
        std::memcpy(t.data<float>() + i, &bits, 4);
      }
      break;
    case 0x0E:
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t bits = be_u64(p + 8 * i);
        double d;
        std::memcpy(&d, &bits, 8);
        t.data<float>()[i] = static_cast<float>(d);
      }
      break;
  }
  return t;
}

// Prefers name.gz, falls back to the uncompressed name.
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::filesystem::path base(dir);
  std::error_code ec;
  if (std::filesystem::exists(base / (name + ".gz"), ec)) return (base / (name + ".gz")).string();
  if (std::filesystem::exists(base / name, ec)) return (base / name).string();
  throw Error(dir + ": no " + name + ".gz (or " + name +
              "); install the Debian package dataset-fashion-mnist or point to a directory with the four IDX files");
}

const char* const kMnistNames[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                   "t10k-labels-idx1-ubyte"};

}  // namespace

Tensor read_idx(const std::string& path) {
  GzReader in(path);
  uint8_t magic[4];
  const size_t got_magic = in.read(magic, 4);
  check(got_magic == 4, path + ": not an IDX file: only " + std::to_string(got_magic) +
                            " bytes, the header alone needs at least 8; check the path");
  check(magic[0] == 0 && magic[1] == 0,
        path + ": not an IDX file: bad magic (first two bytes must be 0x00 0x00); check the path and file type");
  const IdxType* type = nullptr;
  for (const IdxType& t : kIdxTypes)
    if (t.code == magic[2]) type = &t;
  char code_hex[8];
  std::snprintf(code_hex, sizeof code_hex, "0x%02X", magic[2]);
  check(type != nullptr, path + ": unknown IDX type code " + code_hex +
                             "; expected 0x08 (u8), 0x09 (i8), 0x0B (i16), 0x0C (i32), 0x0D (f32) or 0x0E (f64)");
  const int ndims = magic[3];
  check(ndims >= 1, path + ": IDX header declares 0 dimensions; the file is corrupt");

  std::vector<uint8_t> dim_bytes(4 * ndims);
  check(in.read(dim_bytes.data(), dim_bytes.size()) == dim_bytes.size(),
        path + ": truncated IDX header: it declares " + std::to_string(ndims) + " dimensions but the file ends first");
  Shape dims(ndims);
  uint64_t count = 1;
  bool too_big = false;
  for (int i = 0; i < ndims; ++i) {
    dims[i] = be_u32(dim_bytes.data() + 4 * i);
    if (dims[i] != 0 && count > kMaxIdxBytes / static_cast<uint64_t>(dims[i])) too_big = true;
    count *= static_cast<uint64_t>(dims[i]);
  }
  const uint64_t want = count * type->file_bytes;
  check(!too_big && want <= kMaxIdxBytes, path + ": IDX header declares an implausible size " + dims_str(dims) +
                                              "; the file is corrupt or not an IDX file");

  std::vector<uint8_t> raw = read_payload(in, want);
  const std::string expected = "header says " + dims_str(dims) + " " + type->name + " = " + std::to_string(want) + " bytes of data";
  if (raw.size() < want) {
    throw Error(path + ": truncated IDX file: " + expected + ", found " + std::to_string(raw.size()) +
                (in.stream_cut_short() ? " (the gzip stream is cut short)" : "") + "; re-download or check the path");
  }
  const uint64_t extra = count_rest(in);
  check(extra == 0, path + ": IDX file has " + std::to_string(extra) + " trailing bytes: " + expected +
                        "; the file is corrupt or not an IDX file");
  return decode_values(*type, dims, raw);
}

void write_idx(const std::string& path, const Tensor& t) {
  check(t.defined() && t.is_contiguous(), "write_idx: needs a defined, contiguous tensor");
  check(t.rank() >= 1 && t.rank() <= 255, "write_idx: rank must be 1..255, got " + std::to_string(t.rank()));
  uint8_t code = 0;
  switch (t.dtype()) {
    case DType::u8: code = 0x08; break;
    case DType::i8: code = 0x09; break;
    case DType::i32: code = 0x0C; break;
    case DType::f32: code = 0x0D; break;
    default: throw Error(std::string("write_idx: IDX has no ") + dtype_name(t.dtype()) + "; convert to U8, I8, I32 or F32");
  }
  std::vector<uint8_t> header = {0, 0, code, static_cast<uint8_t>(t.rank())};
  for (int64_t d : t.shape()) {
    check(d <= 0xFFFFFFFFll, "write_idx: dimension " + std::to_string(d) + " does not fit IDX's u32");
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<uint8_t>(d >> shift));
  }
  // Values go out big-endian; one byte types need no swap.
  std::vector<uint8_t> body(t.nbytes());
  const size_t width = dtype_size(t.dtype());
  const uint8_t* src = static_cast<const uint8_t*>(t.raw());
  for (size_t i = 0; i < body.size(); i += width)
    for (size_t b = 0; b < width; ++b) body[i + b] = src[i + width - 1 - b];

  GzWriter out(path);
  out.write(header.data(), header.size());
  out.write(body.data(), body.size());
  out.close();
}

std::shared_ptr<InMemoryDataset> load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                                  const IdxImageOptions& options) {
  check(options.std > 0, "IDX images: normalization std must be positive, got " + std::to_string(options.std));
  Tensor images = read_idx(images_path);
  Tensor labels = read_idx(labels_path);
  check(images.dtype() == DType::u8 && (images.rank() == 3 || images.rank() == 4),
        images_path + ": expected u8 images {N, H, W} or {N, C, H, W}, got " + dtype_name(images.dtype()) + " " +
            shape_str(images.shape()) + "; is this the images file?");
  check(labels.rank() == 1 && (labels.dtype() == DType::u8 || labels.dtype() == DType::i8 || labels.dtype() == DType::i32),
        labels_path + ": expected integer labels {N}, got " + dtype_name(labels.dtype()) + " " +
            shape_str(labels.shape()) + "; is this the labels file?");
  const int64_t n = images.dim(0);
  check(labels.dim(0) == n, labels_path + ": has " + std::to_string(labels.dim(0)) + " labels but " + images_path +
                                " has " + std::to_string(n) + " images; use the matching pair of files");
  if (images.rank() == 3) images = images.reshape({n, 1, images.dim(1), images.dim(2)});

  Tensor y = labels.to(DType::i64);
  int64_t max_label = -1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = y.data<int64_t>()[i];
    check(label >= 0, labels_path + ": label " + std::to_string(i) + " is negative (" + std::to_string(label) +
                          "); class ids must be 0..K-1");
    max_label = std::max(max_label, label);
  }
  const int64_t num_classes = options.num_classes > 0 ? options.num_classes : std::max<int64_t>(max_label + 1, 1);
  check(max_label < num_classes, labels_path + ": label " + std::to_string(max_label) + " does not fit " +
                                     std::to_string(num_classes) + " classes; raise num_classes");

  Tensor x = Tensor::empty(images.shape(), DType::f32);
  const uint8_t* px = images.data<uint8_t>();
  float* fx = x.data<float>();
  // Same arithmetic as PyTorch's ToTensor + Normalize, once per pixel value.
  float table[256];
  for (int v = 0; v < 256; ++v) table[v] = (static_cast<float>(v) / 255.0f - options.mean) / options.std;
  for (int64_t i = 0, total = x.numel(); i < total; ++i) fx[i] = table[px[i]];
  return std::make_shared<InMemoryDataset>(std::move(x), std::move(y), Task::classification, num_classes);
}

std::shared_ptr<InMemoryDataset> load_fashion_mnist(const std::string& dir, bool train, const IdxImageOptions& options) {
  const int first = train ? 0 : 2;
  return load_idx_dataset(find_idx_file(dir, kMnistNames[first]), find_idx_file(dir, kMnistNames[first + 1]), options);
}

bool has_mnist_files(const std::string& dir) {
  std::error_code ec;
  for (const char* name : kMnistNames) {
    const std::filesystem::path base(dir);
    if (!std::filesystem::exists(base / (std::string(name) + ".gz"), ec) && !std::filesystem::exists(base / name, ec))
      return false;
  }
  return true;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace leanai
