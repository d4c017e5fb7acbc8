// Tests for the safetensors reader/writer and the atomic file writer.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/io/atomic_file.h"
#include "leanai/io/safetensors.h"

namespace fs = std::filesystem;
using leanai::DType;
using leanai::Error;
using leanai::Tensor;
using Bytes = std::vector<uint8_t>;

namespace {

const DType kAllDtypes[] = {DType::f32, DType::bf16, DType::f16, DType::i8, DType::u8, DType::i32, DType::i64};

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_raw(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string read_text(const std::string& path) {
  Bytes b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

uint64_t u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A file from a hand-written header: 8-byte length, header text, data bytes.
Bytes make_file(const std::string& header, const Bytes& data) {
  Bytes out;
  out.reserve(8 + header.size() + data.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i)));
  for (char c : header) out.push_back(static_cast<uint8_t>(c));
  for (uint8_t b : data) out.push_back(b);
  return out;
}

Bytes zeros(size_t n) { return Bytes(n, 0); }

Tensor random_bits(const leanai::Shape& shape, DType dtype, leanai::Rng& rng) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng.next_u64());
  return t;
}

Tensor f32_from_bits(const std::vector<uint32_t>& bits) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bits.size())});
  std::memcpy(t.raw(), bits.data(), bits.size() * 4);
  return t;
}

void expect_bit_equal(const Tensor& expected, const Tensor& actual, const std::string& name) {
  ASSERT_TRUE(actual.defined()) << name;
  EXPECT_EQ(actual.dtype(), expected.dtype()) << name;
  ASSERT_EQ(actual.shape(), expected.shape()) << name;
  EXPECT_TRUE(actual.is_contiguous()) << name;
  ASSERT_EQ(actual.nbytes(), expected.nbytes()) << name;
  EXPECT_EQ(0, std::memcmp(actual.raw(), expected.raw(), expected.nbytes())) << name << ": bytes differ";
}

// The message of the Error that loading `bytes` throws, or "" if it loads.
std::string load_error(const Bytes& bytes) {
  try {
    leanai::load_safetensors_from_memory(bytes.data(), bytes.size(), "model.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Loading must fail with one line that names the file and each of `parts`.
void expect_rejected(const Bytes& bytes, std::initializer_list<const char*> parts) {
  std::string msg = load_error(bytes);
  ASSERT_FALSE(msg.empty()) << "expected the file to be rejected";
  EXPECT_EQ(msg.rfind("model.safetensors: ", 0), 0u) << msg;
  for (unsigned char c : msg) ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "not one printable ASCII line: " << msg;
  for (const char* part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
}

// One tensor entry for hand-written headers.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// A header object from entries (and "__metadata__" members), comma-joined.
std::string header_of(std::initializer_list<std::string> members) {
  std::string out = "{";
  for (const std::string& m : members) {
    if (out.size() > 1) out += ',';
    out += m;
  }
  out += '}';
  return out;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "leanai_safetensors_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::set<std::string> files_in_dir() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  // A small valid file with metadata, several dtypes, a scalar and an empty tensor.
  Bytes small_valid_file() {
    leanai::Rng rng(7);
    std::map<std::string, Tensor> tensors{{"a.weight", random_bits({2, 3}, DType::f32, rng)},
                                          {"b.bias", random_bits({3}, DType::bf16, rng)},
                                          {"c.index", random_bits({2}, DType::i64, rng)},
                                          {"d.scale", random_bits({}, DType::f16, rng)},
                                          {"e.empty", Tensor::empty({0, 4}, DType::u8)}};
    leanai::save_safetensors(path("small.safetensors"), tensors, {{"format", "pt"}, {"step", "12"}});
    return read_bytes(path("small.safetensors"));
  }

  std::string dir_;
};

// ---------------------------------------------------------------- round trips

TEST_F(SafetensorsTest, RoundTripIsBitExactForEveryDtype) {
  leanai::Rng rng(42);
  std::map<std::string, Tensor> tensors;
  for (DType dt : kAllDtypes) tensors[std::string("t.") + leanai::dtype_name(dt)] = random_bits({3, 5, 2}, dt, rng);
  // NaN payloads (quiet, signalling, negative), -0.0, denormals, infinities.
  tensors["special.f32"] = f32_from_bits({0x7fc00001u, 0x7f800001u, 0xffbfffffu, 0x80000000u, 0x00000001u,
                                          0x807fffffu, 0x7f800000u, 0xff800000u, 0x3f800000u});
  leanai::save_safetensors(path("m.safetensors"), tensors, {});
  leanai::SafetensorsFile loaded = leanai::load_safetensors(path("m.safetensors"));

  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(loaded.tensors.count(name)) << name;
    expect_bit_equal(t, loaded.tensors.at(name), name);
  }
  EXPECT_TRUE(loaded.metadata.empty());
  const float* special = loaded.tensors.at("special.f32").data<float>();
  EXPECT_TRUE(std::isnan(special[0]));
  EXPECT_TRUE(std::signbit(special[3]) && special[3] == 0.0f);
  EXPECT_EQ(std::fpclassify(special[4]), FP_SUBNORMAL);
}

TEST_F(SafetensorsTest, MetadataRoundTrips) {
  std::map<std::string, std::string> metadata{{"format", "pt"},
                                              {"empty", ""},
                                              {"quotes \"and\" \\slashes", "line1\nline2\ttab"},
                                              {"unicode", "poids \xc3\xa9 \xe6\x9d\x83\xe9\x87\x8d"}};
  leanai::save_safetensors(path("m.safetensors"), {{"x", Tensor::full({2}, 1.5f)}}, metadata);
  leanai::SafetensorsFile loaded = leanai::load_safetensors(path("m.safetensors"));
  EXPECT_EQ(loaded.metadata, metadata);
  EXPECT_EQ(loaded.tensors.at("x").data<float>()[1], 1.5f);
}

TEST_F(SafetensorsTest, EmptyTensorsScalarsAndEmptyFilesRoundTrip) {
  Tensor scalar = Tensor::full({}, -2.25f);
  std::map<std::string, Tensor> tensors{{"scalar", scalar},
                                        {"empty", Tensor::empty({0}, DType::f32)},
                                        {"empty3d", Tensor::empty({3, 0, 2}, DType::i32)},
                                        {"after", Tensor::full({1}, 3.0f)}};
  leanai::save_safetensors(path("m.safetensors"), tensors, {});
  leanai::SafetensorsFile loaded = leanai::load_safetensors(path("m.safetensors"));
  for (const auto& [name, t] : tensors) expect_bit_equal(t, loaded.tensors.at(name), name);
  EXPECT_EQ(loaded.tensors.at("scalar").rank(), 0);
  EXPECT_EQ(loaded.tensors.at("scalar").data<float>()[0], -2.25f);

  leanai::save_safetensors(path("none.safetensors"), {}, {});
  leanai::SafetensorsFile none = leanai::load_safetensors(path("none.safetensors"));
  EXPECT_TRUE(none.tensors.empty());
  EXPECT_TRUE(none.metadata.empty());
}

TEST_F(SafetensorsTest, SavesTheViewNotTheWholeBuffer) {
  Tensor all = Tensor::from_vector({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  leanai::save_safetensors(path("m.safetensors"), {{"rows", all.slice0(1, 3)}}, {});
  Tensor rows = leanai::load_safetensors(path("m.safetensors")).tensors.at("rows");
  ASSERT_EQ(rows.shape(), (leanai::Shape{2, 2}));
  EXPECT_EQ(std::vector<float>(rows.data<float>(), rows.data<float>() + 4), (std::vector<float>{2, 3, 4, 5}));
}

// ------------------------------------------------------ format conformance

// Parses the written file by hand, as another implementation would.
TEST_F(SafetensorsTest, WrittenFileFollowsTheSpec) {
  leanai::Rng rng(3);
  std::map<std::string, Tensor> tensors{{"z.last", random_bits({5}, DType::i8, rng)},
                                        {"a.first", random_bits({2, 2}, DType::f32, rng)},
                                        {"m.middle", random_bits({3}, DType::i64, rng)}};
  leanai::save_safetensors(path("m.safetensors"), tensors, {{"k", "v"}});
  const Bytes bytes = read_bytes(path("m.safetensors"));

  ASSERT_GE(bytes.size(), 8u);
  const uint64_t n = u64_le(bytes.data());
  ASSERT_LE(8 + n, bytes.size());
  EXPECT_EQ(n % 8, 0u) << "data section must start 8-byte aligned";
  const std::string header_text(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const size_t json_end = header_text.find_last_not_of(' ') + 1;
  EXPECT_EQ(header_text[json_end - 1], '}');  // only spaces pad the header
  const nlohmann::json header = nlohmann::json::parse(header_text);
  EXPECT_EQ(header.at("__metadata__"), nlohmann::json({{"k", "v"}}));

  // Back to back in name order, covering the data section exactly.
  uint64_t expected_begin = 0;
  for (const auto& [name, t] : tensors) {
    const nlohmann::json& info = header.at(name);
    EXPECT_EQ(info.at("dtype"), leanai::dtype_name(t.dtype()));
    EXPECT_EQ(info.at("shape").get<leanai::Shape>(), t.shape());
    const uint64_t begin = info.at("data_offsets")[0], end = info.at("data_offsets")[1];
    EXPECT_EQ(begin, expected_begin) << name;
    ASSERT_EQ(end - begin, t.nbytes()) << name;
    EXPECT_EQ(0, std::memcmp(bytes.data() + 8 + n + begin, t.raw(), t.nbytes())) << name;
    expected_begin = end;
  }
  EXPECT_EQ(8 + n + expected_begin, bytes.size());
  EXPECT_EQ(header.size(), tensors.size() + 1);
}

// The reference implementation's own test vector (bindings/python/tests).
TEST_F(SafetensorsTest, MatchesTheReferenceWriterByteForByte) {
  leanai::save_safetensors(path("m.safetensors"), {{"test", Tensor::zeros({2, 2}, DType::i32)}}, {});
  const std::string header = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    )";
  EXPECT_EQ(read_bytes(path("m.safetensors")), make_file(header, zeros(16)));
}

TEST_F(SafetensorsTest, LoadsReferenceFilesWithoutPaddingAndInAnyOrder) {
  Bytes unpadded = make_file(R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", zeros(16));
  EXPECT_EQ(leanai::load_safetensors_from_memory(unpadded.data(), unpadded.size(), "x").tensors.at("test").shape(),
            (leanai::Shape{2, 2}));

  // "b" comes first in the data although "a" sorts first; extra keys are ignored.
  Bytes data = {1, 2, 3, 4, 9, 8};
  Bytes shuffled = make_file(header_of({R"("a":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":[1]})",
                                        entry("b", "U8", "[4]", 0, 4), R"("__metadata__":{"framework":"pt"})"}),
                             data);
  leanai::SafetensorsFile f = leanai::load_safetensors_from_memory(shuffled.data(), shuffled.size(), "x");
  EXPECT_EQ(f.tensors.at("a").data<uint8_t>()[0], 9);
  EXPECT_EQ(f.tensors.at("b").data<uint8_t>()[3], 4);
  EXPECT_EQ(f.metadata.at("framework"), "pt");

  Bytes null_metadata = make_file(R"({"__metadata__":null})", {});
  EXPECT_TRUE(leanai::load_safetensors_from_memory(null_metadata.data(), null_metadata.size(), "x").metadata.empty());
}

// Runs only where the reference Python package is installed.
TEST_F(SafetensorsTest, ReferencePythonImplementationReadsOurFiles) {
  if (std::system("/usr/bin/python3 -c 'import safetensors' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 safetensors package not installed";
  leanai::Rng rng(5);
  std::map<std::string, Tensor> tensors;
  for (DType dt : kAllDtypes) tensors[std::string("t.") + leanai::dtype_name(dt)] = random_bits({2, 3}, dt, rng);
  tensors["scalar"] = Tensor::full({}, 1.0f);
  leanai::save_safetensors(path("m.safetensors"), tensors, {{"k", "v"}});

  const std::string script =
      "import sys\n"
      "try:\n    from safetensors import deserialize\n"
      "except ImportError:\n    from safetensors._safetensors_rust import deserialize\n"
      "for name, t in sorted(deserialize(open(sys.argv[1], 'rb').read())):\n"
      "    print(name, t['dtype'], ','.join(str(d) for d in t['shape']), bytes(t['data']).hex())\n";
  std::ofstream(path("check.py")) << script;
  const std::string command = "/usr/bin/python3 " + path("check.py") + " " + path("m.safetensors");
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t got = std::fread(buf, 1, sizeof(buf), pipe)) output.append(buf, got);
  ASSERT_EQ(::pclose(pipe), 0) << output;

  std::string expected;
  for (const auto& [name, t] : tensors) {
    std::string shape, hex;
    for (size_t i = 0; i < t.shape().size(); ++i) {
      if (i) shape += ',';
      shape += std::to_string(t.shape()[i]);
    }
    const auto* p = static_cast<const uint8_t*>(t.raw());
    for (size_t i = 0; i < t.nbytes(); ++i) {
      char h[3];
      std::snprintf(h, sizeof(h), "%02x", p[i]);
      hex += h;
    }
    expected += name + " " + leanai::dtype_name(t.dtype()) + " " + shape + " " + hex + "\n";
  }
  EXPECT_EQ(output, expected);
}

// ----------------------------------------------------------------- rejection

TEST_F(SafetensorsTest, EveryTruncationIsRejected) {
  const Bytes full = small_valid_file();
  ASSERT_NO_THROW(leanai::load_safetensors_from_memory(full.data(), full.size(), "model.safetensors"));
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE("prefix length " + std::to_string(len));
    expect_rejected(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len)), {"truncated"});
  }
  // The same through the file loader, including the empty file.
  for (size_t len : {size_t{0}, size_t{5}, size_t{8}, full.size() - 1}) {
    write_raw(path("cut.safetensors"), Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len)));
    EXPECT_THROW(leanai::load_safetensors(path("cut.safetensors")), Error) << len;
  }
}

TEST_F(SafetensorsTest, RejectsBadHeaderLength) {
  Bytes file = make_file("{}", {});
  file[0] = 200;  // header claims 200 bytes, file has 2
  expect_rejected(file, {"header length 200", "runs past the end of the file (10 bytes)", "truncated"});
  file[0] = 0, file[3] = 0x10;  // 256 MiB
  expect_rejected(file, {"header length 268435456", "exceeds", "limit"});
  std::fill(file.begin(), file.begin() + 8, 0xff);  // u64 max: no overflow in the bounds checks
  expect_rejected(file, {"header length 18446744073709551615"});
}

TEST_F(SafetensorsTest, RejectsHeadersThatAreNotAJsonObject) {
  expect_rejected(make_file("{\"a\": ", {}), {"header is not valid JSON"});
  expect_rejected(make_file("", {}), {"header is not valid JSON"});
  expect_rejected(make_file("{}\n\x01garbage", {}), {"header is not valid JSON"});
  expect_rejected(make_file("{\"\xff\xfe\":1}", {}), {"header is not valid JSON"});  // not UTF-8
  expect_rejected(make_file("[1, 2]", {}), {"must be a JSON object", "array"});
  // A number too large for a double is a different nlohmann exception type.
  expect_rejected(make_file(header_of({entry("w", "U8", "[1e999]", 0, 1)}), zeros(1)), {"header is not valid JSON"});
}

TEST_F(SafetensorsTest, RejectsRepeatedTensorNames) {
  expect_rejected(make_file(header_of({entry("w", "U8", "[1]", 0, 1), entry("w", "U8", "[1]", 1, 2)}), zeros(2)),
                  {"key 'w' more than once"});
}

TEST_F(SafetensorsTest, RejectsUnknownOrMissingDtype) {
  expect_rejected(make_file(header_of({entry("fc1.weight", "F64", "[1]", 0, 8)}), zeros(8)),
                  {"tensor 'fc1.weight'", "dtype 'F64'", "F32, BF16"});
  expect_rejected(make_file(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", zeros(1)),
                  {"tensor 'w'", "dtype must be a string"});
  expect_rejected(make_file(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", zeros(1)), {"tensor 'w'", "no \"dtype\""});
  expect_rejected(make_file(R"({"w":[1,2]})", {}), {"tensor 'w'", "must be an object"});
}

TEST_F(SafetensorsTest, RejectsBadShapes) {
  expect_rejected(make_file(header_of({entry("w", "F32", "[2,-3]", 0, 24)}), zeros(24)),
                  {"tensor 'w'", "dimension 1 = -3", "non-negative integers"});
  expect_rejected(make_file(header_of({entry("w", "F32", "[2.5]", 0, 8)}), zeros(8)), {"tensor 'w'", "dimension 0 = 2.5"});
  expect_rejected(make_file(header_of({entry("w", "F32", "[\"2\"]", 0, 8)}), zeros(8)), {"tensor 'w'", "dimension 0"});
  expect_rejected(make_file(header_of({entry("w", "F32", "2", 0, 8)}), zeros(8)), {"tensor 'w'", "shape must be an array"});
  expect_rejected(make_file(header_of({entry("w", "U8", "[4294967296,4294967296]", 0, 1)}), zeros(1)),
                  {"tensor 'w'", "overflows"});
  // Zero elements, but the non-zero dimensions alone overflow the strides.
  expect_rejected(make_file(header_of({entry("w", "U8", "[0,4294967296,4294967296]", 0, 0)}), {}), {"overflows"});
  expect_rejected(make_file(header_of({entry("w", "I64", "[9223372036854775807]", 0, 8)}), zeros(8)),
                  {"tensor 'w'", "byte size overflows"});
}

TEST_F(SafetensorsTest, RejectsBadDataOffsets) {
  expect_rejected(make_file(header_of({entry("fc1.weight", "U8", "[8]", 4, 12)}), zeros(8)),
                  {"tensor 'fc1.weight'", "data range [4, 12) runs past the end of the data section (8 bytes)"});
  expect_rejected(make_file(header_of({entry("w", "U8", "[0]", 5, 3)}), zeros(8)), {"tensor 'w'", "[5, 3) ends before it begins"});
  expect_rejected(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", zeros(1)),
                  {"tensor 'w'", "data_offsets must be two non-negative integers"});
  expect_rejected(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", zeros(1)),
                  {"tensor 'w'", "data_offsets must be two"});
  expect_rejected(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}})", zeros(1)),
                  {"tensor 'w'", "data_offsets must be two"});
}

TEST_F(SafetensorsTest, RejectsSizeMismatch) {
  expect_rejected(make_file(header_of({entry("w", "F32", "[2,3]", 0, 20)}), zeros(20)),
                  {"tensor 'w'", "F32 [2, 3] = 24 bytes", "[0, 20) holds 20 bytes"});
}

TEST_F(SafetensorsTest, RejectsOverlapsGapsAndTrailingBytes) {
  expect_rejected(make_file(header_of({entry("a", "U8", "[8]", 0, 8), entry("b", "U8", "[8]", 4, 12)}), zeros(12)),
                  {"tensor 'b' data range [4, 12) overlaps tensor 'a' data range [0, 8)"});
  expect_rejected(make_file(header_of({entry("a", "U8", "[4]", 0, 4), entry("b", "U8", "[4]", 6, 10)}), zeros(10)),
                  {"gap", "bytes [4, 6) belong to no tensor", "'a'", "'b'"});
  expect_rejected(make_file(header_of({entry("a", "U8", "[4]", 2, 6)}), zeros(6)), {"gap", "bytes [0, 2)", "before tensor 'a'"});
  expect_rejected(make_file(header_of({entry("a", "U8", "[4]", 0, 4)}), zeros(7)),
                  {"data section has 7 bytes", "cover only the first 4", "trailing"});
  expect_rejected(make_file("{}", zeros(1)), {"trailing"});
}

TEST_F(SafetensorsTest, RejectsNonStringMetadata) {
  expect_rejected(make_file(R"({"__metadata__":{"ok":"x","epochs":3}})", {}), {"__metadata__", "'epochs'", "must be a string"});
  expect_rejected(make_file(R"({"__metadata__":["a"]})", {}), {"__metadata__ must be an object"});
}

TEST_F(SafetensorsTest, ErrorMessagesStayOnOneLine) {
  // A name with a newline and control bytes (valid JSON escapes) must not break the message.
  expect_rejected(make_file(header_of({entry("bad\\nname\\u0001", "F64", "[1]", 0, 8)}), zeros(8)), {"'bad?name?'"});
}

TEST_F(SafetensorsTest, FileLoaderReportsMissingFilesAndDirectories) {
  try {
    leanai::load_safetensors(path("missing.safetensors"));
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  for (const std::string& not_a_file : {dir_, path("fifo")}) {
    try {
      leanai::load_safetensors(not_a_file);
      FAIL() << "expected Error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
}

// Deterministic mutations of a valid file: each must load or throw Error.
TEST_F(SafetensorsTest, RandomMutationsLoadOrThrowNeverCrash) {
  const Bytes valid = small_valid_file();
  const uint64_t header_end = 8 + u64_le(valid.data());
  std::vector<size_t> digits;  // digit positions in the header: shapes and offsets
  for (size_t i = 8; i < header_end; ++i)
    if (valid[i] >= '0' && valid[i] <= '9') digits.push_back(i);
  ASSERT_FALSE(digits.empty());

  leanai::Rng rng(2024);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Bytes b = valid;
    const int mutations = 1 + static_cast<int>(rng.below(3));
    for (int m = 0; m < mutations; ++m) {
      switch (rng.below(5)) {
        case 0: b[rng.below(b.size())] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
        case 1: b[rng.below(b.size())] = static_cast<uint8_t>(rng.next_u64()); break;
        case 2: b[digits[rng.below(digits.size())]] = static_cast<uint8_t>('0' + rng.below(10)); break;
        case 3:  // the header length field
          if (b.size() >= 8) b[rng.below(8)] = static_cast<uint8_t>(rng.next_u64());
          break;
        case 4: b.resize(rng.below(b.size() + 16), static_cast<uint8_t>(rng.next_u64())); break;
      }
      if (b.empty()) break;
    }
    try {
      leanai::SafetensorsFile f = leanai::load_safetensors_from_memory(b.data(), b.size(), "model.safetensors");
      size_t total = 0;
      for (const auto& [name, t] : f.tensors) total += t.nbytes();
      EXPECT_EQ(8 + u64_le(b.data()) + total, b.size()) << "iteration " << iter;
      ++loaded;
    } catch (const Error& e) {
      for (unsigned char c : std::string(e.what())) ASSERT_FALSE(c < 0x20 || c == 0x7f) << "not one line: " << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << iter << ": non-Error exception: " << e.what();
    }
  }
  std::printf("mutations: %d loaded, %d rejected\n", loaded, rejected);
  // Both outcomes must occur, or the mutations are not exercising anything.
  EXPECT_GT(loaded, 50);
  EXPECT_GT(rejected, 500);
}

// -------------------------------------------------------------- atomic write

TEST_F(SafetensorsTest, SaveIntoMissingDirectoryThrowsAndCreatesNothing) {
  const std::string target = path("no/such/dir/model.safetensors");
  try {
    leanai::save_safetensors(target, {{"w", Tensor::zeros({2})}}, {});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(target), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
  EXPECT_TRUE(files_in_dir().empty());
}

TEST_F(SafetensorsTest, ThrowingWriterKeepsPreviousFileAndLeavesNoTemp) {
  const std::string target = path("report.json");
  leanai::write_text_atomic(target, "old");
  EXPECT_THROW(leanai::write_file_atomic(target,
                                         [&](std::FILE* f) {
                                           leanai::write_bytes(f, "new, half written", 17, target);
                                           throw std::runtime_error("writer failed");
                                         }),
               std::runtime_error);
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"report.json"}));
}

TEST_F(SafetensorsTest, StreamErrorInWriterIsReported) {
  const std::string target = path("report.json");
  leanai::write_text_atomic(target, "old");
  // Reading a write-only stream sets its error flag, as a failed fwrite would.
  EXPECT_THROW(leanai::write_file_atomic(target, [](std::FILE* f) { std::fgetc(f); }), Error);
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"report.json"}));
}

// A file size limit makes writes fail like a full disk does.
TEST_F(SafetensorsTest, WriteFailureMidFileKeepsPreviousFile) {
  const std::string target = path("m.safetensors");
  leanai::save_safetensors(target, {{"w", Tensor::full({4}, 1.0f)}}, {});
  const Bytes before = read_bytes(target);

  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit small = old_limit;
  small.rlim_cur = 64 * 1024;
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  try {
    leanai::save_safetensors(target, {{"w", Tensor::zeros({1 << 20})}}, {});
  } catch (const Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_EQ(read_bytes(target), before);
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"m.safetensors"}));
}

TEST_F(SafetensorsTest, WriteBytesReportsShortWrites) {
  leanai::write_text_atomic(path("in.txt"), "x");
  std::FILE* read_only = std::fopen(path("in.txt").c_str(), "rb");
  ASSERT_NE(read_only, nullptr);
  EXPECT_THROW(leanai::write_bytes(read_only, "abc", 3, "out.bin"), Error);
  std::fclose(read_only);
}

TEST_F(SafetensorsTest, TargetThatIsADirectoryIsReported) {
  fs::create_directory(path("out"));
  try {
    leanai::write_text_atomic(path("out"), "text");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("replacing"), std::string::npos) << e.what();
  }
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"out"}));
}

TEST_F(SafetensorsTest, ReadOnlyDirectoryIsReported) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  fs::create_directory(path("ro"));
  fs::permissions(path("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(leanai::write_text_atomic(path("ro/x.txt"), "text"), Error);
  fs::permissions(path("ro"), fs::perms::owner_all);
  EXPECT_TRUE(fs::is_empty(path("ro")));
}

TEST_F(SafetensorsTest, AtomicWriteReplacesExistingFile) {
  const std::string target = path("report.json");
  leanai::write_text_atomic(target, "first version, longer");
  leanai::write_text_atomic(target, "second");
  EXPECT_EQ(read_text(target), "second");
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"report.json"}));
}

TEST_F(SafetensorsTest, InvalidTensorsAreRejectedBeforeTouchingTheFile) {
  const std::string target = path("m.safetensors");
  leanai::write_text_atomic(target, "old");
  EXPECT_THROW(leanai::save_safetensors(target, {{"w", Tensor()}}, {}), Error);
  EXPECT_THROW(leanai::save_safetensors(target, {{"__metadata__", Tensor::zeros({1})}}, {}), Error);
  EXPECT_THROW(leanai::save_safetensors(target, {{"bad\xff", Tensor::zeros({1})}}, {}), Error);
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(files_in_dir(), (std::set<std::string>{"m.safetensors"}));
}

}  // namespace
