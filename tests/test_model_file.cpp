// Tests for the leanai model file (io/model_file.h): bit-exact round trips,
// the safetensors layout on disk, checkpoints, and rejection of damaged or
// foreign files with a clear leanai::Error.
#include <gtest/gtest.h>

#include "temp_dir.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/core/threads.h"
#include "leanai/data/dataset.h"
#include "leanai/graph/executor.h"
#include "leanai/graph/graph.h"
#include "leanai/io/model_file.h"
#include "leanai/io/safetensors.h"
#include "leanai/nn/models.h"
#include "leanai/nn/trainer.h"

namespace fs = std::filesystem;
using namespace leanai;
using Bytes = std::vector<uint8_t>;

namespace {

using leanai::test_support::TempDir;

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_raw(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

uint64_t u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The parts of a safetensors file, parsed by hand (not with the library).
struct RawFile {
  uint64_t header_len = 0;
  json header;
  Bytes data;  // the data section
};

RawFile parse_raw(const Bytes& bytes) {
  RawFile f;
  if (bytes.size() < 8) throw std::runtime_error("file shorter than 8 bytes");
  f.header_len = u64_le(bytes.data());
  if (f.header_len > bytes.size() - 8) throw std::runtime_error("header length past the end");
  f.header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(f.header_len));
  f.data.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(f.header_len), bytes.end());
  return f;
}

// Reassembles a file from a (possibly edited) header and a data section.
Bytes assemble(const std::string& header, const Bytes& data) {
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void expect_same_params(const Graph& expected, const Graph& actual) {
  ASSERT_EQ(expected.params().size(), actual.params().size());
  for (auto& [name, p] : expected.params()) {
    auto it = actual.params().find(name);
    ASSERT_NE(it, actual.params().end()) << "missing parameter " << name;
    EXPECT_EQ(p.trainable, it->second.trainable) << name;
    EXPECT_TRUE(same_bytes(p.value, it->second.value)) << "parameter " << name << " differs";
  }
}

// Random f32 values in [-1, 1) for every parameter, including buffers, so the
// round trip cannot pass by accident on zeros/ones (BN running stats).
void randomize(Graph& g, uint64_t seed) {
  Rng rng(seed);
  for (auto& [name, p] : g.params()) {
    float* v = p.value.data<float>();
    const bool positive = name.find("running_var") != std::string::npos;
    for (int64_t i = 0; i < p.value.numel(); ++i) v[i] = positive ? rng.uniform(0.5f, 2.0f) : rng.uniform(-1.0f, 1.0f);
  }
}

Tensor random_input(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = rng.normal();
  return t;
}

json sample_info() {
  return {{"task", "classification"},
          {"num_outputs", 10},
          {"sample_shape", {1, 28, 28}},
          {"model", "cnn-bn"},
          {"data", {{"class_names", {"a", "b\"quoted\"", "ünïcode"}}, {"split_seed", 42}}},
          {"training", {{"test", {{"accuracy", 0.8125}, {"loss", 0.5}}}}}};
}

// A small tabular model (cheap to save many times) with a buffer and dropout.
json small_spec() {
  return json::parse(R"({"layers": [{"type": "linear", "out": 16}, {"type": "batchnorm"}, {"type": "relu"},
                                    {"type": "dropout", "p": 0.25}, {"type": "linear"}]})");
}

Graph small_model(uint64_t seed = 3) { return build_from_spec(small_spec(), {20}, 3, seed); }

// The message of the Error that load_model(path) throws; fails the test when
// it throws nothing or something other than leanai::Error.
std::string load_error(const std::string& path) {
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "load_model threw a non-leanai exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "load_model accepted " << path;
  return "";
}

void expect_load_error(const std::string& path, std::initializer_list<const char*> parts) {
  const std::string msg = load_error(path);
  if (msg.empty()) return;
  EXPECT_NE(msg.find(path), std::string::npos) << "the message does not name the file: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  for (const char* part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
}

class ModelFileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { set_num_threads(1); }
  TempDir dir_;
};

// ---------------------------------------------------------------------------
// Round trips

TEST_F(ModelFileTest, RoundTripIsBitExactForEveryParameterAndGraph) {
  Graph g = build_preset("cnn-bn", {1, 28, 28}, 10, 7);
  randomize(g, 11);
  const json info = sample_info();
  const std::string path = dir_.file("m.leanai");
  save_model(path, g, info);

  LoadedModel m = load_model(path);
  EXPECT_FALSE(m.is_checkpoint());
  EXPECT_TRUE(m.trainer_tensors.empty());
  EXPECT_TRUE(m.trainer_state.is_null());
  expect_same_params(g, m.graph);
  EXPECT_EQ(g.to_json(), m.graph.to_json());
  EXPECT_EQ(info, m.info);
  EXPECT_EQ(g.num_trainable_parameters(), m.graph.num_trainable_parameters());
  // Buffers (BN running statistics) stay non-trainable.
  EXPECT_FALSE(m.graph.params().at("bn2.running_mean").trainable);
  EXPECT_TRUE(m.graph.params().at("bn2.weight").trainable);
}

TEST_F(ModelFileTest, LoadedGraphGivesIdenticalOutputs) {
  Graph g = build_preset("cnn-bn", {1, 28, 28}, 10, 5);
  randomize(g, 6);
  const std::string path = dir_.file("m.leanai");
  save_model(path, g, json::object());
  LoadedModel m = load_model(path);

  const Tensor x = random_input({3, 1, 28, 28}, 99);
  Executor a(g), b(m.graph);
  a.set_training(false);
  b.set_training(false);
  const Tensor ya = a.forward({x}).clone();
  const Tensor yb = b.forward({x}).clone();
  ASSERT_EQ(ya.shape(), (Shape{3, 10}));
  EXPECT_TRUE(same_bytes(ya, yb)) << "outputs of the loaded model differ from the original";
  // The outputs depend on the parameters: a changed weight changes them (the check above is not vacuous).
  m.graph.param("fc1.weight").value.data<float>()[0] += 1.0f;
  Executor c(m.graph);
  const Tensor yc = c.forward({x}).clone();
  EXPECT_FALSE(same_bytes(ya, yc));
}

TEST_F(ModelFileTest, RoundTripOfEveryPreset) {
  for (const std::string& preset : preset_names()) {
    SCOPED_TRACE(preset);
    Graph g = build_preset(preset, {1, 28, 28}, 10, 1);
    const std::string path = dir_.file(preset + ".leanai");
    save_model(path, g, {{"model", preset}});
    LoadedModel m = load_model(path);
    expect_same_params(g, m.graph);
    EXPECT_EQ(g.to_json(), m.graph.to_json());
    EXPECT_EQ(m.info["model"], preset);
  }
}

TEST_F(ModelFileTest, SavingTwiceGivesIdenticalBytes) {
  Graph g = small_model();
  save_model(dir_.file("a.leanai"), g, sample_info());
  save_model(dir_.file("b.leanai"), g, sample_info());
  EXPECT_EQ(read_bytes(dir_.file("a.leanai")), read_bytes(dir_.file("b.leanai")));
  // Saving over an existing file replaces it and leaves no temp files behind.
  save_model(dir_.file("a.leanai"), g, {{"other", true}});
  EXPECT_EQ(load_model(dir_.file("a.leanai")).info, (json{{"other", true}}));
  EXPECT_EQ(dir_.listing(), (std::set<std::string>{"a.leanai", "b.leanai"}));
}

// ---------------------------------------------------------------------------
// The file on disk is plain safetensors

TEST_F(ModelFileTest, FileIsValidSafetensors) {
  Graph g = build_preset("cnn-bn", {1, 28, 28}, 10, 2);
  randomize(g, 3);
  const json info = sample_info();
  const std::string path = dir_.file("m.leanai");
  save_model(path, g, info);
  const Bytes bytes = read_bytes(path);
  RawFile f = parse_raw(bytes);

  EXPECT_EQ((8 + f.header_len) % 8, 0u) << "the data section should start 8-byte aligned";
  ASSERT_TRUE(f.header.is_object());
  ASSERT_TRUE(f.header.contains("__metadata__"));
  const json& meta = f.header["__metadata__"];
  ASSERT_TRUE(meta.is_object());
  for (auto& [k, v] : meta.items()) EXPECT_TRUE(v.is_string()) << "metadata " << k << " must be a string";
  EXPECT_EQ(meta.at("format"), "leanai-model");
  EXPECT_EQ(meta.at("version"), "1");
  EXPECT_EQ(json::parse(meta.at("graph").get<std::string>()), g.to_json());
  EXPECT_EQ(json::parse(meta.at("info").get<std::string>()), info);

  // One F32 tensor per parameter with its shape and bytes; the tensors tile the data section.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  size_t tensors = 0;
  for (auto& [name, entry] : f.header.items()) {
    if (name == "__metadata__") continue;
    ++tensors;
    SCOPED_TRACE(name);
    ASSERT_TRUE(g.params().count(name)) << "tensor is not a parameter";
    const Tensor& p = g.params().at(name).value;
    EXPECT_EQ(entry.at("dtype"), "F32");
    EXPECT_EQ(entry.at("shape").get<Shape>(), p.shape());
    const uint64_t begin = entry.at("data_offsets")[0], end = entry.at("data_offsets")[1];
    ASSERT_EQ(end - begin, p.nbytes());
    ASSERT_LE(end, f.data.size());
    EXPECT_EQ(0, std::memcmp(f.data.data() + begin, p.raw(), p.nbytes())) << "stored bytes differ";
    ranges.emplace_back(begin, end);
  }
  EXPECT_EQ(tensors, g.params().size());
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (auto& [b, e] : ranges) {
    EXPECT_EQ(b, covered) << "gap or overlap in the data section";
    covered = e;
  }
  EXPECT_EQ(covered, f.data.size());
  // And the library's own safetensors reader agrees.
  SafetensorsFile st = load_safetensors(path);
  EXPECT_EQ(st.tensors.size(), g.params().size());
  EXPECT_EQ(st.metadata.at("format"), "leanai-model");
}

// ---------------------------------------------------------------------------
// Checkpoints

class CheckpointTest : public ModelFileTest {
 protected:
  // 64 samples of 20 features, 3 classes.
  static std::shared_ptr<InMemoryDataset> data() {
    Rng rng(17);
    Tensor x = Tensor::empty({64, 20});
    Tensor y = Tensor::empty({64}, DType::i64);
    for (int64_t i = 0; i < 64; ++i) {
      y.data<int64_t>()[i] = i % 3;
      for (int j = 0; j < 20; ++j) x.data<float>()[i * 20 + j] = rng.normal() + (j % 3 == i % 3 ? 1.5f : 0.0f);
    }
    return std::make_shared<InMemoryDataset>(x, y, Task::classification, 3);
  }
};

TEST_F(CheckpointTest, CheckpointLoadsAsModelAndCarriesTrainerState) {
  Graph g = small_model();
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 16;
  cfg.seed = 9;
  Trainer trainer(g, Task::classification, 3, cfg);
  trainer.train_epoch(data());
  const auto tensors = trainer.state_tensors();
  const json state = trainer.state_json();
  ASSERT_FALSE(tensors.empty());
  EXPECT_EQ(state.at("epochs_done"), 1);
  EXPECT_EQ(state.at("step"), 4);

  const std::string path = dir_.file("c.ckpt");
  save_checkpoint(path, g, sample_info(), tensors, state);
  LoadedModel m = load_model(path);
  EXPECT_TRUE(m.is_checkpoint());
  expect_same_params(g, m.graph);
  EXPECT_EQ(g.to_json(), m.graph.to_json());
  EXPECT_EQ(m.info, sample_info());
  EXPECT_EQ(m.trainer_state, state);
  ASSERT_EQ(m.trainer_tensors.size(), tensors.size());
  for (auto& [name, t] : tensors) {
    ASSERT_TRUE(m.trainer_tensors.count(name)) << name;
    EXPECT_TRUE(same_bytes(t, m.trainer_tensors.at(name))) << name;
  }
  // Adam's moments are not all zero after an epoch (the comparison above means something).
  const Tensor& m1 = tensors.at("m.fc1.weight");
  bool nonzero = false;
  for (int64_t i = 0; i < m1.numel(); ++i) nonzero |= m1.data<float>()[i] != 0.0f;
  EXPECT_TRUE(nonzero);

  // On disk the optimizer tensors live under "optimizer/" and the state in metadata.
  SafetensorsFile st = load_safetensors(path);
  EXPECT_TRUE(st.tensors.count("optimizer/m.fc1.weight"));
  EXPECT_TRUE(st.tensors.count("optimizer/steps"));
  EXPECT_EQ(json::parse(st.metadata.at("checkpoint")), state);

  // It restores into a new Trainer on the loaded graph.
  Trainer resumed(m.graph, Task::classification, 3, TrainConfig::from_json(m.trainer_state.at("config")));
  resumed.restore(m.trainer_tensors, m.trainer_state);
  EXPECT_EQ(resumed.epochs_done(), 1);
  EXPECT_EQ(resumed.steps_done(), 4);
}

TEST_F(CheckpointTest, RestoreRejectsStateOfAnotherOptimizer) {
  Graph g = small_model();
  TrainConfig cfg;
  cfg.batch_size = 16;
  cfg.optimizer.kind = "sgd";
  cfg.optimizer.momentum = 0.9f;
  Trainer sgd(g, Task::classification, 3, cfg);
  sgd.train_epoch(data());
  save_checkpoint(dir_.file("c.ckpt"), g, json::object(), sgd.state_tensors(), sgd.state_json());
  LoadedModel m = load_model(dir_.file("c.ckpt"));
  TrainConfig adam_cfg;
  Trainer adam(m.graph, Task::classification, 3, adam_cfg);
  try {
    adam.restore(m.trainer_tensors, m.trainer_state);
    FAIL() << "restoring SGD state into Adam should fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------
// Rejection of damaged and foreign files

class RejectTest : public ModelFileTest {
 protected:
  void SetUp() override {
    good_ = dir_.file("good.leanai");
    save_model(good_, small_model(), sample_info());
    bytes_ = read_bytes(good_);
    raw_ = parse_raw(bytes_);
  }
  // Writes bytes as `name` and returns its path.
  std::string put(const std::string& name, const Bytes& b) {
    const std::string p = dir_.file(name);
    write_raw(p, b);
    return p;
  }
  // A well-formed safetensors file built by the library from the good one's tensors and metadata after `edit`.
  template <typename Edit>
  std::string rewritten(const std::string& name, Edit edit) {
    SafetensorsFile st = load_safetensors(good_);
    edit(st.tensors, st.metadata);
    const std::string p = dir_.file(name);
    save_safetensors(p, st.tensors, st.metadata);
    return p;
  }
  std::string good_;
  Bytes bytes_;
  RawFile raw_;
};

TEST_F(RejectTest, GoodFileLoads) { EXPECT_NO_THROW(load_model(good_)); }

TEST_F(RejectTest, TruncatedFile) {
  const size_t hdr_end = 8 + raw_.header_len;
  const std::vector<size_t> cuts = {0, 1, 7, 8, 9, 8 + raw_.header_len / 2, hdr_end - 1, hdr_end, hdr_end + 1,
                                    hdr_end + raw_.data.size() / 2, bytes_.size() - 4, bytes_.size() - 1};
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes_.size()));
    const std::string p = put("cut.leanai", Bytes(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(cut)));
    expect_load_error(p, {"truncated"});
  }
}

TEST_F(RejectTest, GarbageHeaderJson) {
  const std::string p = put("bad.leanai", assemble("{\"weights\": [1, 2,, garbage", raw_.data));
  expect_load_error(p, {"header is not valid JSON"});
  // A header that is valid JSON but not an object.
  const std::string q = put("bad2.leanai", assemble("[1, 2, 3]", raw_.data));
  expect_load_error(q, {"header must be a JSON object"});
}

TEST_F(RejectTest, HeaderLengthLargerThanFile) {
  Bytes b = bytes_;
  const uint64_t len = bytes_.size();  // > size - 8
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(len >> (8 * i));
  expect_load_error(put("long.leanai", b), {"header length", "runs past the end of the file"});
  // An absurd length (a random 64-bit number) is caught by the size limit.
  for (int i = 0; i < 8; ++i) b[i] = 0xA5;
  expect_load_error(put("huge.leanai", b), {"header length", "corrupt"});
}

TEST_F(RejectTest, BadDataOffsets) {
  // Shift one tensor's range by 4 bytes (same length): it now overlaps a neighbour or leaves a gap.
  for (auto& [name, entry] : raw_.header.items()) {
    if (name == "__metadata__") continue;
    SCOPED_TRACE(name);
    json h = raw_.header;
    const uint64_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    h[name]["data_offsets"] = {begin + 4, end + 4};
    expect_load_error(put("shift.leanai", assemble(h.dump(), raw_.data)), {name.c_str(), "corrupt"});
  }
  // A range whose length does not match the shape.
  json h = raw_.header;
  h["fc1.bias"]["data_offsets"][1] = h["fc1.bias"]["data_offsets"][1].get<uint64_t>() - 4;
  expect_load_error(put("short.leanai", assemble(h.dump(), raw_.data)), {"fc1.bias", "bytes"});
  // A range past the data section.
  h = raw_.header;
  h["fc1.bias"]["data_offsets"] = {raw_.data.size(), raw_.data.size() + 64};
  expect_load_error(put("past.leanai", assemble(h.dump(), raw_.data)), {"fc1.bias", "runs past the end"});
}

TEST_F(RejectTest, TensorMissingFromValidSafetensors) {
  const std::string p = rewritten("missing.leanai", [](auto& tensors, auto&) { tensors.erase("fc1.weight"); });
  EXPECT_NO_THROW(load_safetensors(p)) << "the file itself is valid safetensors";
  expect_load_error(p, {"parameter 'fc1.weight' is missing"});
}

TEST_F(RejectTest, WrongDtypeForParameter) {
  const std::string p = rewritten("f16.leanai", [](auto& tensors, auto&) {
    tensors["fc1.bias"] = tensors["fc1.bias"].to(DType::f16);
  });
  expect_load_error(p, {"fc1.bias", "dtype F16", "F32"});
  const std::string q = rewritten("i64.leanai", [](auto& tensors, auto&) {
    tensors["bn1.running_var"] = Tensor::zeros(tensors["bn1.running_var"].shape(), DType::i64);
  });
  expect_load_error(q, {"bn1.running_var", "I64"});
}

TEST_F(RejectTest, WrongShapeForParameter) {
  const std::string p = rewritten("shape.leanai", [](auto& tensors, auto&) { tensors["fc1.bias"] = Tensor::zeros({17}); });
  expect_load_error(p, {"fc1.bias", "[17]", "[16]"});
}

TEST_F(RejectTest, ExtraTensorNotInGraph) {
  const std::string p = rewritten("extra.leanai", [](auto& tensors, auto&) { tensors["stowaway"] = Tensor::zeros({2}); });
  expect_load_error(p, {"'stowaway'", "not a parameter"});
}

TEST_F(RejectTest, SafetensorsWithoutLeanaiMetadata) {
  const std::string p = rewritten("plain.safetensors", [](auto&, auto& meta) { meta.clear(); });
  expect_load_error(p, {"not a leanai model"});
  const std::string q = rewritten("other.safetensors", [](auto&, auto& meta) { meta["format"] = "pt"; });
  expect_load_error(q, {"not a leanai model", "format"});
  const std::string r = rewritten("nograph.safetensors", [](auto&, auto& meta) { meta.erase("graph"); });
  expect_load_error(r, {"'graph'"});
}

TEST_F(RejectTest, UnsupportedVersion) {
  const std::string p = rewritten("v9.leanai", [](auto&, auto& meta) { meta["version"] = "9"; });
  expect_load_error(p, {"version '9'"});
}

TEST_F(RejectTest, CorruptGraphJsonInMetadata) {
  const std::string p = rewritten("graph.leanai", [](auto&, auto& meta) { meta["graph"] = "{\"nodes\": [ {\"op\": "; });
  expect_load_error(p, {"'graph' metadata is not valid JSON"});
  const std::string q = rewritten("info.leanai", [](auto&, auto& meta) { meta["info"] = "not json"; });
  expect_load_error(q, {"'info' metadata is not valid JSON"});
  // Valid JSON of the wrong structure.
  const std::string r = rewritten("struct.leanai", [](auto&, auto& meta) {
    json g = json::parse(meta["graph"]);
    g["nodes"] = "oops";
    meta["graph"] = g.dump();
  });
  expect_load_error(r, {"invalid model graph"});
  // A node reading a later node (not topologically ordered).
  const std::string s = rewritten("order.leanai", [](auto&, auto& meta) {
    json g = json::parse(meta["graph"]);
    for (json& n : g["nodes"])
      if (n["op"] == "relu") n["inputs"] = {static_cast<int>(g["nodes"].size()) - 1};
    meta["graph"] = g.dump();
  });
  expect_load_error(s, {"invalid model graph"});
}

TEST_F(RejectTest, UnknownOpInGraph) {
  const std::string p = rewritten("op.leanai", [](auto&, auto& meta) {
    json g = json::parse(meta["graph"]);
    for (json& n : g["nodes"])
      if (n["op"] == "relu") n["op"] = "frobnicate";
    meta["graph"] = g.dump();
  });
  expect_load_error(p, {"invalid model graph", "frobnicate"});
}

TEST_F(RejectTest, NotAFileAtAll) {
  expect_load_error(dir_.file("does-not-exist.leanai"), {"cannot open"});
  const std::string d = dir_.file("a-directory");
  fs::create_directory(d);
  expect_load_error(d, {"not a regular file"});
  // Random bytes.
  Rng rng(1);
  Bytes noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(rng.next_u64());
  expect_load_error(put("noise.leanai", noise), {"corrupt"});
}

// ---------------------------------------------------------------------------
// Failed saves

TEST_F(ModelFileTest, SaveIntoMissingDirectoryFailsAndWritesNothing) {
  Graph g = small_model();
  const std::string target = dir_.file("no-such-dir/m.leanai");
  EXPECT_THROW(save_model(target, g, json::object()), Error);
  EXPECT_FALSE(fs::exists(dir_.file("no-such-dir")));
  EXPECT_TRUE(dir_.listing().empty());
  EXPECT_THROW(save_checkpoint(target, g, json::object(), {}, json::object()), Error);
  EXPECT_TRUE(dir_.listing().empty());
}

TEST_F(ModelFileTest, FailedSaveLeavesExistingFileUnchangedAndNoTempFile) {
  const std::string target = dir_.file("m.leanai");
  save_model(target, small_model(1), {{"version", "old"}});
  const Bytes before = read_bytes(target);

  // Make the write fail part-way: a file size limit below the model's size (works as root, too).
  Graph big = build_preset("mlp", {1, 28, 28}, 10, 2);  // ~2 MiB of parameters
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit small = old_limit;
  small.rlim_cur = 256 * 1024;
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  try {
    save_model(target, big, {{"version", "new"}});
  } catch (const Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_FALSE(msg.empty()) << "the save should have failed";
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_EQ(read_bytes(target), before) << "the existing file was changed";
  EXPECT_EQ(load_model(target).info, (json{{"version", "old"}}));
  EXPECT_EQ(dir_.listing(), (std::set<std::string>{"m.leanai"})) << "a temp file was left behind";

  // The target is a directory: the rename fails, the directory and its contents survive, no temp file.
  const std::string d = dir_.file("dir.leanai");
  fs::create_directory(d);
  save_model(d + "/inner.leanai", small_model(), json::object());
  EXPECT_THROW(save_model(d, small_model(), json::object()), Error);
  EXPECT_TRUE(fs::is_directory(d));
  EXPECT_NO_THROW(load_model(d + "/inner.leanai"));
  EXPECT_EQ(dir_.listing(), (std::set<std::string>{"m.leanai", "dir.leanai"}));
}

}  // namespace
