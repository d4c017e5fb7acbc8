// Tests for the leanai command line: runs the built binary (LEANAI_CLI_PATH)
// in temp directories and checks exit codes, stdout/stderr and the files it
// writes (or must not write).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "leanai/core/rng.h"
#include "leanai/core/tensor.h"
#include "leanai/data/idx.h"
#include "leanai/graph/executor.h"
#include "leanai/io/model_file.h"

namespace fs = std::filesystem;
using leanai::json;
using leanai::Tensor;

namespace {

struct Result {
  int rc = -1;
  std::string out, err;
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  std::vector<json> json_lines() const {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) lines.push_back(json::parse(l));
    return lines;
  }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

bool same_params(const leanai::Graph& a, const leanai::Graph& b) {
  if (a.params().size() != b.params().size()) return false;
  for (auto& [name, p] : a.params()) {
    auto it = b.params().find(name);
    if (it == b.params().end() || it->second.value.shape() != p.value.shape() ||
        std::memcmp(it->second.value.raw(), p.value.raw(), p.value.nbytes()) != 0)
      return false;
  }
  return true;
}

// The rows [0, n) of a tensor as a new contiguous tensor.
Tensor first_rows(const Tensor& t, int64_t n) { return t.slice0(0, n).clone(); }

class Cli : public ::testing::Test {
 protected:
  // Shared fixtures, built once: a small Fashion-MNIST IDX directory, a copy
  // with a truncated image file, a CSV table, and a model trained on the IDX data.
  static void SetUpTestSuite() {
    std::string pattern = (fs::temp_directory_path() / "leanai_cli_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "capture");
    fs::create_directories(root_ / "work");
    // Kernel choices the runtime measures are cached here, not in the user's home.
    ::setenv("LEANAI_CACHE_DIR", (root_ / "cache").c_str(), 1);
    if (!leanai::has_mnist_files(leanai::kFashionMnistDir)) return;

    // 600 train / 200 test images of the real data, gzip-compressed like the originals.
    fm_ = (root_ / "fm").string();
    fs::create_directories(fm_);
    const fs::path src = leanai::kFashionMnistDir;
    struct Part {
      const char* name;
      int64_t n;
    };
    for (Part p : {Part{"train-images-idx3-ubyte", 600}, Part{"train-labels-idx1-ubyte", 600},
                   Part{"t10k-images-idx3-ubyte", 200}, Part{"t10k-labels-idx1-ubyte", 200}}) {
      Tensor t = first_rows(leanai::read_idx((src / (std::string(p.name) + ".gz")).string()), p.n);
      leanai::write_idx(fm_ + "/" + p.name + ".gz", t);
      if (std::string(p.name) == "t10k-labels-idx1-ubyte") test_labels_ = t;
    }
    // The same files uncompressed, with the training images cut short.
    truncated_ = (root_ / "fm_truncated").string();
    fs::create_directories(truncated_);
    for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"})
      leanai::write_idx(truncated_ + "/" + name, leanai::read_idx(fm_ + "/" + name + ".gz"));
    fs::resize_file(truncated_ + "/train-images-idx3-ubyte", 16 + 300 * 784 + 100);

    // The reference model for eval/predict/info: mlp, 1 epoch, one thread.
    model_ = (root_ / "m.leanai").string();
    train_result_ = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "1", "--threads", "1", "--batch-size",
                         "64", "--out", model_, "--json"},
                        root_);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void SetUp() override {
    // A fresh, empty working directory for each test.
    cwd_ = root_ / "work" / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(cwd_);
  }

  static Result run(const std::vector<std::string>& args, const fs::path& cwd) {
    const std::string out = (root_ / "capture" / "stdout").string(), err = (root_ / "capture" / "stderr").string();
    // Built with += only: GCC 12 gives a false -Wrestrict on "literal" + std::string&&.
    std::string cmd = "cd ";
    cmd += quote(cwd.string());
    cmd += " && OMP_WAIT_POLICY=passive ";
    cmd += quote(LEANAI_CLI_PATH);
    for (const auto& a : args) {
      cmd += ' ';
      cmd += quote(a);
    }
    cmd += " >";
    cmd += quote(out);
    cmd += " 2>";
    cmd += quote(err);
    cmd += " </dev/null";
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    r.out = read_text(out);
    r.err = read_text(err);
    return r;
  }
  Result run(const std::vector<std::string>& args) const { return run(args, cwd_); }

  // The command fails with one "leanai: error:" line naming each part, prints
  // nothing on stdout, and writes no file into the working directory.
  void expect_clean_error(const std::vector<std::string>& args, std::initializer_list<const char*> parts) {
    std::string cmdline = "leanai";
    for (const auto& a : args) cmdline += " " + a;
    SCOPED_TRACE(cmdline);
    const auto before = listing(cwd_);
    Result r = run(args);
    EXPECT_NE(r.rc, 0);
    EXPECT_LT(r.rc, 128) << "killed by a signal";
    const auto lines = r.err_lines();
    ASSERT_EQ(lines.size(), 1u) << "stderr should be exactly one line:\n" << r.err;
    EXPECT_EQ(lines[0].rfind("leanai: error: ", 0), 0u) << lines[0];
    for (const char* p : parts) EXPECT_NE(lines[0].find(p), std::string::npos) << "missing '" << p << "' in: " << lines[0];
    EXPECT_EQ(r.out, "") << "nothing on stdout on failure";
    EXPECT_EQ(listing(cwd_), before) << "a failed command wrote files";
  }

  static json result_line(const Result& r) {
    for (const json& j : r.json_lines())
      if (j.value("event", "") == "result") return j;
    return json();
  }

  static fs::path root_;
  static std::string fm_, truncated_, model_;
  static Tensor test_labels_;
  static Result train_result_;
  fs::path cwd_;
};

fs::path Cli::root_;
std::string Cli::fm_, Cli::truncated_, Cli::model_;
Tensor Cli::test_labels_;
Result Cli::train_result_;

#define NEED_FMNIST() \
  if (fm_.empty()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)"

// A CSV of three separable blobs in four features, with a string label column
// that is not the last one and an id column to ignore.
std::string blobs_csv(int rows) {
  std::ostringstream out;
  out << "f1,species,f2,f3,f4\n";
  leanai::Rng rng(3);
  const char* names[] = {"setosa", "versicolor", "virginica"};
  for (int i = 0; i < rows; ++i) {
    const int c = i % 3;
    out << (c * 2.0 + 0.3 * rng.normal()) << "," << names[c] << "," << (-c + 0.3 * rng.normal()) << ","
        << (5.0 + 0.3 * rng.normal()) << "," << (c == 1 ? 1.0 : 0.0) + 0.3 * rng.normal() << "\n";
  }
  return out.str();
}

// ---------------------------------------------------------------------------
// Help

TEST_F(Cli, HelpForEverySubcommand) {
  struct Case {
    std::vector<std::string> args;
    std::vector<const char*> mentions;
  };
  const std::vector<Case> cases = {
      {{"--help"}, {"train", "eval", "predict", "info"}},
      {{"train", "--help"},
       {"--model", "--data", "--out", "--epochs", "--batch-size", "--lr", "--optimizer", "--threads", "--checkpoint",
        "--resume", "--json", "--label"}},
      {{"eval", "--help"}, {"model", "--data", "--split", "--batch-size", "--threads", "--json"}},
      {{"predict", "--help"}, {"model", "--input", "--output", "--format", "--json"}},
      {{"info", "--help"}, {"model", "--input-shape", "--classes", "--json"}},
      {{"bench", "--help"}, {"model", "--batch", "--threads", "--compare", "--layers", "--recommend", "--json"}},
      {{"export-onnx", "--help"}, {"model", "--out", "--opset", "--fixed-batch", "--json"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + (c.args.size() > 1 ? c.args[1] : ""));
    Result r = run(c.args);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.err, "");
    for (const char* m : c.mentions) EXPECT_NE(r.out.find(m), std::string::npos) << "help does not mention " << m;
  }
  Result v = run({"--version"});
  EXPECT_EQ(v.rc, 0);
  EXPECT_NE(v.out.find("leanai 0.1.0"), std::string::npos) << v.out;
  EXPECT_TRUE(listing(cwd_).empty());
}

// ---------------------------------------------------------------------------
// Errors: one line, non-zero exit, no output file

TEST_F(Cli, UsageErrors) {
  expect_clean_error({"train", "--bogus"}, {"--bogus"});
  expect_clean_error({"frobnicate"}, {"unknown subcommand 'frobnicate'", "train, eval, predict, info"});
  expect_clean_error({"--bogus"}, {"unknown option '--bogus'"});
  expect_clean_error({}, {"subcommand"});
  expect_clean_error({"train", "--epochs", "0"}, {"--epochs"});
  expect_clean_error({"train", "--epochs", "many"}, {"--epochs"});
  expect_clean_error({"train", "--lr", "-1"}, {"--lr", "-1", "(0, 100]"});
  expect_clean_error({"train", "--lr", "0"}, {"--lr", "(0, 100]"});
  expect_clean_error({"train", "--batch-size", "0"}, {"--batch-size"});
  expect_clean_error({"train", "--optimizer", "lbfgs"}, {"--optimizer"});
  expect_clean_error({"eval"}, {"model"});
  expect_clean_error({"predict", "m.leanai"}, {"--input"});
  expect_clean_error({"eval", "m.leanai", "--split", "validation"}, {"--split"});
}

TEST_F(Cli, TrainErrors) {
  NEED_FMNIST();
  const std::vector<std::string> base = {"train", "--data", fm_, "--epochs", "1"};
  auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra);
    return a;
  };
  expect_clean_error(with({"--threads", "-1"}), {"--threads"});
  expect_clean_error(with({"--model", "resnet50"}), {"unknown model preset 'resnet50'"});
  expect_clean_error(with({"--model", (root_ / "no-such-spec.json").string()}), {"cannot open model spec", "no-such-spec.json"});
  const std::string bad_spec = (root_ / "bad_spec.json").string();
  write_text(bad_spec, "{\"layers\": [{\"type\": \"linear\",");
  expect_clean_error(with({"--model", bad_spec}), {"bad_spec.json", "not valid JSON"});
  const std::string wrong_spec = (root_ / "wrong_spec.json").string();
  write_text(wrong_spec, R"({"layers": [{"type": "flatten"}, {"type": "linear", "out": 10, "units": 3}]})");
  expect_clean_error(with({"--model", wrong_spec}), {"unknown key 'units'"});
  expect_clean_error(with({"--nesterov"}), {"--nesterov"});
  expect_clean_error(with({"--out", "no-such-dir/m.leanai"}), {"--out", "no-such-dir", "does not exist"});
  // Checked before training, not after the first epoch.
  expect_clean_error(with({"--checkpoint", "no-such-dir/c.ckpt", "--json"}), {"--checkpoint", "no-such-dir", "does not exist"});
  expect_clean_error(with({"--resume", (root_ / "no-such.ckpt").string()}), {"no-such.ckpt"});
  expect_clean_error(with({"--resume", model_}), {"not a checkpoint"});
}

TEST_F(Cli, DataErrors) {
  NEED_FMNIST();
  const std::vector<std::string> base = {"train", "--epochs", "1", "--threads", "1", "--model", "mlp"};
  auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra);
    return a;
  };
  expect_clean_error(with({"--data", (root_ / "no-such-dir").string()}), {"no-such-dir", "no such file or directory"});
  expect_clean_error(with({"--data", truncated_}), {"train-images-idx3-ubyte", "truncated"});
  const std::string empty_dir = (root_ / "empty_dir").string();
  fs::create_directories(empty_dir);
  expect_clean_error(with({"--data", empty_dir}), {"empty_dir", "lacks the four IDX files"});
  const std::string csv = (root_ / "blobs.csv").string();
  write_text(csv, blobs_csv(30));
  expect_clean_error(with({"--data", csv, "--label", "genus"}), {"'genus'", "species"});
  const std::string ragged = (root_ / "ragged.csv").string();
  write_text(ragged, "a,b,label\n1,2,x\n3,y\n");
  expect_clean_error(with({"--data", ragged, "--label", "label"}), {"ragged.csv", "line 3"});
  const std::string text = (root_ / "text.csv").string();
  write_text(text, "a,b,label\n1,2,x\n3,oops,y\n");
  expect_clean_error(with({"--data", text, "--label", "label"}), {"text.csv", "oops"});
}

TEST_F(Cli, EvalAndPredictErrors) {
  NEED_FMNIST();
  ASSERT_TRUE(fs::exists(model_));
  expect_clean_error({"eval", (root_ / "missing.leanai").string()}, {"missing.leanai", "cannot open"});
  // A truncated model file, cut in the data section and in the header.
  const std::string bytes = read_text(model_);
  const std::string cut = (root_ / "cut.leanai").string();
  write_text(cut, bytes.substr(0, bytes.size() / 2));
  expect_clean_error({"eval", cut}, {"cut.leanai", "truncated"});
  write_text(cut, bytes.substr(0, 100));
  expect_clean_error({"eval", cut}, {"cut.leanai", "truncated"});
  // Random bytes.
  const std::string noise = (root_ / "noise.leanai").string();
  {
    leanai::Rng rng(7);
    std::string b(8192, '\0');
    for (char& c : b) c = static_cast<char>(rng.next_u64());
    write_text(noise, b);
  }
  expect_clean_error({"eval", noise}, {"noise.leanai", "not a safetensors file"});
  expect_clean_error({"predict", noise, "--input", fm_ + "/t10k-images-idx3-ubyte.gz"}, {"noise.leanai"});
  expect_clean_error({"info", noise}, {"noise.leanai"});
  // Eval on data of another shape than the model's.
  const std::string csv = (root_ / "blobs_eval.csv").string();
  write_text(csv, blobs_csv(30));
  expect_clean_error({"eval", model_, "--data", csv, "--label", "species", "--threads", "1"}, {"shape", "[4]", "[1, 28, 28]"});

  // Predict: images of the wrong shape, a missing input, a bad output directory.
  const std::string small = (root_ / "small-images-idx3-ubyte").string();
  leanai::write_idx(small, Tensor::zeros({5, 10, 10}, leanai::DType::u8));
  expect_clean_error({"predict", model_, "--input", small}, {"small-images-idx3-ubyte", "[5, 10, 10]", "[1, 28, 28]"});
  expect_clean_error({"predict", model_, "--input", (root_ / "nothing.gz").string()}, {"nothing.gz"});
  expect_clean_error({"predict", model_, "--input", csv}, {"not trained on CSV data"});
  expect_clean_error({"predict", model_, "--input", fm_ + "/t10k-images-idx3-ubyte.gz", "--output", "no-dir/p.csv"},
                     {"no-dir"});
}

TEST_F(Cli, FailedTrainDoesNotClobberExistingOutput) {
  NEED_FMNIST();
  const std::string precious = "precious bytes, not a model\n";
  write_text((cwd_ / "keep.leanai").string(), precious);
  const std::string bad_spec = (root_ / "bad_spec2.json").string();
  write_text(bad_spec, "not json");
  for (std::vector<std::string> extra : {std::vector<std::string>{"--model", "resnet50", "--data", fm_},
                                         {"--model", bad_spec, "--data", fm_},
                                         {"--model", "mlp", "--data", truncated_},
                                         {"--model", "mlp", "--data", fm_, "--resume", model_},
                                         {"--model", "mlp", "--data", fm_, "--lr", "0"}}) {
    std::vector<std::string> args = {"train", "--epochs", "1", "--threads", "1", "--out", "keep.leanai", "--checkpoint",
                                     "keep.ckpt"};
    args.insert(args.end(), extra.begin(), extra.end());
    expect_clean_error(args, {});
    EXPECT_EQ(read_text((cwd_ / "keep.leanai").string()), precious);
  }
  EXPECT_EQ(listing(cwd_), (std::set<std::string>{"keep.leanai"}));
}

// ---------------------------------------------------------------------------
// Happy paths

TEST_F(Cli, TrainWritesModelAndJsonLines) {
  NEED_FMNIST();
  const Result& r = train_result_;
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "") << "--json prints nothing on stderr";
  const auto lines = r.json_lines();
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0].at("event"), "epoch");
  EXPECT_EQ(lines[0].at("stats").at("epoch"), 1);
  EXPECT_GT(lines[0].at("stats").at("train_accuracy").get<double>(), 0.3);
  const json res = lines[1];
  EXPECT_EQ(res.at("event"), "result");
  EXPECT_EQ(res.at("out"), model_);
  EXPECT_EQ(res.at("epochs"), 1);
  EXPECT_EQ(res.at("test").at("count"), 200);
  // 600 images, one epoch, one thread: measured 0.605 here; the threshold is far above chance (0.1).
  EXPECT_GT(res.at("test").at("accuracy").get<double>(), 0.5);
  ASSERT_TRUE(fs::exists(model_));

  leanai::LoadedModel m = leanai::load_model(model_);
  EXPECT_EQ(m.graph.num_trainable_parameters(), 535818);
  EXPECT_FALSE(m.is_checkpoint());
  EXPECT_EQ(m.info.at("task"), "classification");
  EXPECT_EQ(m.info.at("model"), "mlp");
  EXPECT_EQ(m.info.at("sample_shape"), (json{1, 28, 28}));
  EXPECT_EQ(m.info.at("data").at("spec"), fm_);
  EXPECT_EQ(m.info.at("data").at("class_names").size(), 10u);
  EXPECT_EQ(m.info.at("training").at("test").at("accuracy"), res.at("test").at("accuracy"));
}

TEST_F(Cli, TrainTextOutput) {
  NEED_FMNIST();
  Result r = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "1", "--threads", "1", "--out", "t.leanai"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("saved t.leanai"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("epoch 1:"), std::string::npos) << r.err;
  EXPECT_EQ(listing(cwd_), (std::set<std::string>{"t.leanai"}));
  // --quiet: only the result on stdout.
  Result q = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "1", "--threads", "1", "--out", "q.leanai", "-q"});
  ASSERT_EQ(q.rc, 0) << q.err;
  EXPECT_EQ(q.err, "");
  EXPECT_EQ(lines_of(q.out).size(), 1u) << q.out;
}

TEST_F(Cli, EvalReproducesTrainingAccuracy) {
  NEED_FMNIST();
  ASSERT_EQ(train_result_.rc, 0);
  const json trained = result_line(train_result_).at("test");
  // With the data named again, and from the model's own record of its data.
  for (bool give_data : {true, false}) {
    SCOPED_TRACE(give_data ? "--data given" : "data from the model file");
    std::vector<std::string> args = {"eval", model_, "--json", "--threads", "1", "--latency-runs", "3"};
    if (give_data) args.insert(args.end(), {"--data", fm_});
    Result r = run(args);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto lines = r.json_lines();
    ASSERT_EQ(lines.size(), 1u) << r.out;
    const json& j = lines[0];
    EXPECT_EQ(j.at("split"), "test");
    EXPECT_EQ(j.at("count"), 200);
    EXPECT_EQ(j.at("accuracy").get<double>(), trained.at("accuracy").get<double>());
    EXPECT_DOUBLE_EQ(j.at("loss").get<double>(), trained.at("loss").get<double>());
    EXPECT_EQ(j.at("confusion"), trained.at("confusion"));
    EXPECT_GT(j.at("latency").at("batch1_ms").get<double>(), 0.0);
  }
  // The train split and the text report.
  Result t = run({"eval", model_, "--split", "train", "--json", "--threads", "1", "--latency-runs", "3"});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_EQ(t.json_lines().at(0).at("count"), 600);
  Result text = run({"eval", model_, "--threads", "1", "--latency-runs", "3"});
  ASSERT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("confusion matrix"), std::string::npos);
  EXPECT_NE(text.out.find("Ankle boot"), std::string::npos);
  EXPECT_TRUE(listing(cwd_).empty()) << "eval writes no files";
}

// ---------------------------------------------------------------------------
// export-onnx

TEST_F(Cli, ExportOnnxWritesAModelImportReadsBack) {
  NEED_FMNIST();
  Result r = run({"export-onnx", model_, "--out", "m.onnx", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["event"], "export-onnx");
  EXPECT_EQ(j["opset"], 13);
  EXPECT_EQ(j["ops"]["Gemm"], 3);
  EXPECT_EQ(j["ops"]["Relu"], 2);
  EXPECT_GT(j["weight_bytes"].get<int64_t>(), 4 * 784 * 512);
  EXPECT_EQ(listing(cwd_), std::set<std::string>{"m.onnx"}) << "no temp file is left";
  r = run({"export-onnx", model_, "-o", "m.onnx"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).size(), 1u);
  EXPECT_NE(r.out.find("Gemm 3"), std::string::npos) << r.out;

  // `leanai import` reads the file back and computes the same logits.
  ASSERT_EQ(run({"import", "m.onnx", "-o", "back.leanai"}).rc, 0);
  leanai::LoadedModel a = leanai::load_model(model_), b = leanai::load_model((cwd_ / "back.leanai").string());
  Tensor x = Tensor::empty({4, 1, 28, 28});
  leanai::Rng rng(5);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = rng.normal();
  leanai::Executor ea(a.graph), eb(b.graph);
  const Tensor want = ea.forward({x}).clone();
  const Tensor& got = eb.forward({x});
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5);
}

TEST_F(Cli, QuantizeWritesAModelWithItsPlanAndTable) {
  NEED_FMNIST();
  // The reference model has no validation split: validation comes from training rows.
  Result r = run({"quantize", model_, "--data", fm_, "--target", "max-drop=1%", "--calib-samples", "100",
                  "--val-samples", "300", "--max-evals", "2", "--latency-batch", "16", "--threads", "1",
                  "--out", "q.leanai", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["table"].size(), 3u);
  EXPECT_EQ(j["table"][0]["name"], "fp32");
  EXPECT_EQ(j["table"][1]["name"], "uniform int8");
  EXPECT_LT(j["table"][1]["size_share"].get<double>(), 0.3);  // int8 weights + f32 scales and biases
  EXPECT_EQ(j["plan"].size(), 3u);
  EXPECT_LE(j["solver"]["evaluations"].get<int>(), 2);
  EXPECT_EQ(listing(cwd_), std::set<std::string>{"q.leanai"}) << "no temp file is left";
  // The written model loads, runs, and says how it was made.
  const leanai::LoadedModel q = leanai::load_model((cwd_ / "q.leanai").string());
  EXPECT_EQ(q.info["quantization"]["plan"], j["plan"]);
  EXPECT_EQ(q.info["quantization"]["calibration"].size(), 3u);
  r = run({"eval", "q.leanai", "--data", fm_, "--json", "--threads", "1", "--latency-runs", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  // eval runs the reference kernels, the table the compiled plan: at most a sample apart.
  EXPECT_NEAR(json::parse(r.out)["accuracy"].get<double>(), j["table"][2]["test_accuracy"].get<double>(), 0.006);

  // --uniform skips the solver; a sensitivity table can be reused.
  r = run({"sensitivity", model_, "--data", fm_, "--calib-samples", "100", "--val-samples", "200", "--latency-batch",
           "8", "--threads", "1", "-o", "s.json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("fc1"), std::string::npos) << r.out;
  r = run({"quantize", model_, "--data", fm_, "--sensitivity", "s.json", "--target", "size=40%", "--calib-samples",
           "100", "--val-samples", "200", "--max-evals", "2", "--latency-batch", "8", "--threads", "1", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_LE(json::parse(r.out)["table"][2]["size_share"].get<double>(), 0.4);
  EXPECT_TRUE(fs::exists(fs::path(model_).parent_path() / "m.quant.leanai"));  // the default output name
  fs::remove(fs::path(model_).parent_path() / "m.quant.leanai");
}

// A model that came in through ONNX says nothing of its task or data: the
// labelled --data decides. One layer computes its input's range per batch.
TEST_F(Cli, QuantizeAnImportedModelWithOneDynamicLayer) {
  NEED_FMNIST();
  ASSERT_EQ(run({"export-onnx", model_, "--out", "m.onnx"}).rc, 0);
  ASSERT_EQ(run({"import", "m.onnx", "-o", "back.leanai"}).rc, 0);
  Result r = run({"quantize", "back.leanai", "--data", fm_, "--uniform", "int8", "--dynamic-layers", "fc1",
                  "--calib-samples", "100", "--val-samples", "200", "--latency-batch", "8", "--threads", "1",
                  "--out", "q.leanai", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["plan"].size(), 3u);
  for (const auto& [layer, precision] : j["plan"].items()) EXPECT_EQ(precision, "int8") << layer;
  // Uniform int8 keeps the imported model's accuracy to within a point.
  EXPECT_NEAR(j["table"][2]["test_accuracy"].get<double>(), j["table"][0]["test_accuracy"].get<double>(), 0.01);
  const json calibration = leanai::load_model((cwd_ / "q.leanai").string()).info["quantization"]["calibration"];
  EXPECT_EQ(calibration["fc1"], json({{"dynamic", true}}));
  EXPECT_TRUE(calibration["fc2"].contains("scale")) << calibration.dump();

  const std::vector<std::string> base = {"quantize", "back.leanai", "--data", fm_, "--out", "q2.leanai"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_clean_error(with({"--dynamic-layers", "fc1,conv9"}), {"--dynamic-layers", "no layer 'conv9'", "fc1, fc2, fc3"});
  expect_clean_error(with({"--dynamic", "--dynamic-layers", "fc1"}), {"--dynamic"});
}

TEST_F(Cli, QuantizeErrors) {
  expect_clean_error({"quantize", "missing.leanai"}, {"missing.leanai"});
  NEED_FMNIST();
  const std::vector<std::string> base = {"quantize", model_, "--data", fm_, "--calib-samples", "100", "--out", "q.leanai"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_clean_error(with({"--target", "accuracy=1"}), {"unknown target 'accuracy'"});
  expect_clean_error(with({"--target", "size=big"}), {"size"});
  expect_clean_error(with({"--uniform", "int3"}), {"--uniform"});
  expect_clean_error(with({"--calibrator", "magic"}), {"--calibrator"});
  expect_clean_error(with({"--sensitivity", "nope.json"}), {"nope.json"});
  write_text((cwd_ / "bad.json").string(), "{\"layers\": 1}");
  expect_clean_error(with({"--sensitivity", (cwd_ / "bad.json").string()}), {"sensitivity table"});
  expect_clean_error(with({"--calib-samples", "600000"}), {"--calib-samples"});
  EXPECT_FALSE(fs::exists(cwd_ / "q.leanai"));
}

TEST_F(Cli, ExportOnnxErrors) {
  expect_clean_error({"export-onnx", "missing.leanai", "--out", "m.onnx"}, {"missing.leanai"});
  expect_clean_error({"export-onnx", "missing.leanai"}, {"--out"});
  expect_clean_error({"export-onnx", "missing.leanai", "--out", "m.onnx", "--opset", "11"}, {"--opset"});
  // A model with an op ONNX export does not cover names it, and writes nothing.
  leanai::Graph g;
  const int x = g.add_input("input", {8});
  g.set_output(g.add("layernorm", {x, g.add_param("ln.weight", Tensor::full({8}, 1.0f)), g.add_param("ln.bias", Tensor::zeros({8}))},
                     {}, "ln"));
  const std::string ln = (root_ / "layernorm.leanai").string();
  leanai::save_model(ln, g, {{"task", "classification"}});
  expect_clean_error({"export-onnx", ln, "--out", "m.onnx"}, {"'ln'", "layernorm", "cannot export"});
}

TEST_F(Cli, InfoReportsParametersAndFlops) {
  NEED_FMNIST();
  ASSERT_EQ(train_result_.rc, 0);
  Result r = run({"info", model_, "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("parameters"), 535818);
  EXPECT_EQ(j.at("buffers"), 0);
  // Three linear layers: 2 * (784*512 + 512*256 + 256*10) multiply-adds, plus elementwise ops.
  const double flops = j.at("flops_per_sample");
  EXPECT_GT(flops, 0.0);
  EXPECT_GE(flops, 2.0 * 535040);
  EXPECT_LT(flops, 1.2 * 2.0 * 535818);
  EXPECT_EQ(j.at("param_bytes"), 535818 * 4);
  EXPECT_EQ(j.at("file_bytes"), static_cast<int64_t>(fs::file_size(model_)));
  EXPECT_EQ(j.at("info").at("model"), "mlp");
  EXPECT_FALSE(j.at("layers").empty());
  // A preset without a file, and the text form.
  Result p = run({"info", "cnn", "--json"});
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(json::parse(p.out).at("parameters"), 225034);
  Result t = run({"info", model_});
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("535818 trainable"), std::string::npos) << t.out;
}

TEST_F(Cli, BenchReportsBothRunnersAndLayers) {
  NEED_FMNIST();
  ASSERT_EQ(train_result_.rc, 0);
  Result r = run({"bench", model_, "--batch", "1,3", "--seconds", "0.05", "--runs", "10", "--compare", "--layers",
                  "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::set<std::pair<std::string, int64_t>> rows;
  int layers = 0;
  for (const json& j : r.json_lines()) {
    if (j.contains("layer")) {
      ++layers;
      EXPECT_GE(j.at("ms").get<double>(), 0.0);
      // Batches this small run whole: one call per batch.
      EXPECT_EQ(j.at("samples_per_call").get<int64_t>(), j.at("batch").get<int64_t>());
      continue;
    }
    rows.insert({j.at("runner").get<std::string>(), j.at("batch").get<int64_t>()});
    EXPECT_GT(j.at("samples_per_s").get<double>(), 0.0);
    EXPECT_LE(j.at("p50_ms").get<double>(), j.at("p99_ms").get<double>());
    EXPECT_GE(j.at("runs").get<int64_t>(), 10);
  }
  const std::set<std::pair<std::string, int64_t>> want = {{"leanai", 1}, {"leanai", 3}, {"unoptimized", 1}, {"unoptimized", 3}};
  EXPECT_EQ(rows, want);
  EXPECT_EQ(layers, 2 * 3);  // three fused linear layers per batch size
  expect_clean_error({"bench", "cnn", "--batch", "0"}, {"--batch"});
  expect_clean_error({"bench", "missing.leanai"}, {"missing.leanai"});
  expect_clean_error({"bench", "mlp", "--recommend", "fast"}, {"--recommend"});
}

TEST_F(Cli, BenchTimesSeveralModelsSideBySide) {
  Result r = run({"bench", "mlp", "cnn", "--batch", "1,2", "--seconds", "0.05", "--runs", "10", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::set<std::pair<std::string, int64_t>> rows;
  std::map<int64_t, double> first_p50;  // per batch: the first model's, printed first
  for (const json& j : r.json_lines()) {
    const int64_t batch = j.at("batch").get<int64_t>();
    rows.insert({j.at("model").get<std::string>(), batch});
    EXPECT_GE(j.at("runs").get<int64_t>(), 10);
    const double p50 = j.at("p50_ms").get<double>();
    if (j.at("model") == "mlp") first_p50[batch] = p50;
    // Each model's own p50 against the first's, not the other way round.
    ASSERT_TRUE(first_p50.count(batch)) << "the first model's row comes first";
    EXPECT_NEAR(j.at("speedup_vs_first").get<double>(), first_p50[batch] / p50, 1e-9);
  }
  const std::set<std::pair<std::string, int64_t>> want = {{"mlp", 1}, {"mlp", 2}, {"cnn", 1}, {"cnn", 2}};
  EXPECT_EQ(rows, want);
  Result text = run({"bench", "mlp", "mlp", "--batch", "1", "--seconds", "0.05", "--runs", "10"});
  ASSERT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("[2] mlp"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("vs [1]"), std::string::npos) << text.out;
  expect_clean_error({"bench", "mlp", "cnn", "--compare"}, {"--compare", "one model"});
  expect_clean_error({"bench", "mlp", "cnn", "--recommend", "latency"}, {"--recommend", "one model"});
}

TEST_F(Cli, BenchRecommendsAParallelSplit) {
  Result r = run({"bench", "mlp", "--recommend", "throughput", "--seconds", "0.05", "--threads", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("measured").size(), 2u * 4u);  // {1x2, 2x1} threads x streams, 4 batch sizes
  EXPECT_EQ(j.at("serving").at("threads").get<int>() * j.at("serving").at("streams").get<int>(), 2);
  EXPECT_EQ(j.at("training").at("strategy"), "data-parallel");
}

TEST_F(Cli, PredictWritesOneRowPerImage) {
  NEED_FMNIST();
  ASSERT_EQ(train_result_.rc, 0);
  const std::string images = fm_ + "/t10k-images-idx3-ubyte.gz";
  Result r = run({"predict", model_, "--input", images, "--output", "p.csv", "--threads", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(listing(cwd_), (std::set<std::string>{"p.csv"}));
  const auto rows = lines_of(read_text((cwd_ / "p.csv").string()));
  ASSERT_EQ(rows.size(), 201u);
  EXPECT_EQ(rows[0], "index,label,name,p0,p1,p2,p3,p4,p5,p6,p7,p8,p9");
  int64_t correct = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto f = split(rows[i], ',');
    ASSERT_EQ(f.size(), 13u) << rows[i];
    EXPECT_EQ(std::stoll(f[0]), static_cast<int64_t>(i - 1));
    const int64_t label = std::stoll(f[1]);
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 10);
    EXPECT_EQ(f[2], "\"" + leanai::fashion_mnist_class_names()[label] + "\"");
    double sum = 0, best = -1;
    int64_t arg = -1;
    for (int c = 0; c < 10; ++c) {
      const double p = std::stod(f[3 + c]);
      sum += p;
      if (p > best) best = p, arg = c;
    }
    EXPECT_NEAR(sum, 1.0, 1e-4) << rows[i];
    EXPECT_EQ(arg, label);
    correct += label == test_labels_.data<uint8_t>()[i - 1];
  }
  // The predicted labels give the accuracy training reported on the same images.
  EXPECT_DOUBLE_EQ(correct / 200.0, result_line(train_result_).at("test").at("accuracy").get<double>());

  // To stdout, and as JSON.
  Result s = run({"predict", model_, "--input", images, "--threads", "1"});
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_EQ(lines_of(s.out), rows);
  Result j = run({"predict", model_, "--input", images, "--threads", "1", "--json"});
  ASSERT_EQ(j.rc, 0) << j.err;
  const json arr = json::parse(j.out);
  ASSERT_EQ(arr.size(), 200u);
  EXPECT_EQ(arr[7].at("label").get<int64_t>(), std::stoll(split(rows[8], ',')[1]));
  EXPECT_EQ(arr[7].at("probabilities").size(), 10u);
}

TEST_F(Cli, CsvTrainEvalPredict) {
  const std::string csv = (cwd_ / "blobs.csv").string();
  write_text(csv, blobs_csv(150));
  Result r = run({"train", "--data", csv, "--label", "species", "--model", "mlp", "--epochs", "5", "--batch-size",
                  "16", "--threads", "1", "--out", "c.leanai", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json res = result_line(r);
  ASSERT_FALSE(res.is_null()) << r.out;
  EXPECT_EQ(res.at("test").at("count"), 30);  // 20% of 150, stratified
  EXPECT_GE(res.at("test").at("accuracy").get<double>(), 0.9) << "three well-separated blobs";

  leanai::LoadedModel m = leanai::load_model((cwd_ / "c.leanai").string());
  EXPECT_EQ(m.info.at("data").at("label"), "species");
  EXPECT_EQ(m.info.at("data").at("class_names"), (json{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(m.info.at("data").at("feature_names"), (json{"f1", "f2", "f3", "f4"}));
  EXPECT_TRUE(m.info.at("data").contains("standardizer"));

  // eval finds the CSV, label and split in the model file and gets the same test split.
  Result e = run({"eval", "c.leanai", "--json", "--threads", "1", "--latency-runs", "3"});
  ASSERT_EQ(e.rc, 0) << e.err;
  const json ej = e.json_lines().at(0);
  EXPECT_EQ(ej.at("count"), 30);
  EXPECT_EQ(ej.at("accuracy").get<double>(), res.at("test").at("accuracy").get<double>());
  EXPECT_DOUBLE_EQ(ej.at("loss").get<double>(), res.at("test").at("loss").get<double>());
  EXPECT_EQ(ej.at("confusion"), res.at("test").at("confusion"));

  // predict on CSV rows (columns by name, the label column ignored) names the classes.
  Result p = run({"predict", "c.leanai", "--input", csv, "--output", "p.csv", "--threads", "1"});
  ASSERT_EQ(p.rc, 0) << p.err;
  const auto rows = lines_of(read_text((cwd_ / "p.csv").string()));
  ASSERT_EQ(rows.size(), 151u);
  EXPECT_EQ(rows[0], "index,label,name,p0,p1,p2");
  int correct = 0;
  const char* names[] = {"\"setosa\"", "\"versicolor\"", "\"virginica\""};
  for (size_t i = 1; i < rows.size(); ++i) correct += split(rows[i], ',').at(2) == names[(i - 1) % 3];
  EXPECT_GE(correct, 135) << "predictions on the training table";
}

TEST_F(Cli, CsvRegression) {
  std::ostringstream csv;
  csv << "a,b,target\n";
  leanai::Rng rng(4);
  for (int i = 0; i < 200; ++i) {
    const double a = rng.uniform(-1, 1), b = rng.uniform(-1, 1);
    csv << a << "," << b << "," << (3 * a - b + 1) << "\n";
  }
  write_text((cwd_ / "lin.csv").string(), csv.str());
  Result r = run({"train", "--data", "lin.csv", "--task", "regression", "--model", "mlp", "--epochs", "20",
                  "--batch-size", "16", "--threads", "1", "--out", "r.leanai", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const json res = result_line(r);
  EXPECT_EQ(res.at("test").at("count"), 40);
  EXPECT_LT(res.at("test").at("loss").get<double>(), 0.005) << "mse (measured 6e-5)";
  Result e = run({"eval", "r.leanai", "--json", "--threads", "1", "--latency-runs", "3"});
  ASSERT_EQ(e.rc, 0) << e.err;
  EXPECT_DOUBLE_EQ(e.json_lines().at(0).at("loss").get<double>(), res.at("test").at("loss").get<double>());
}

TEST_F(Cli, CheckpointAndResume) {
  NEED_FMNIST();
  const std::vector<std::string> common = {"--model", "mlp", "--data", fm_, "--threads", "1", "--batch-size", "64",
                                           "--seed", "3", "--json"};
  auto train = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> a = {"train"};
    a.insert(a.end(), common.begin(), common.end());
    a.insert(a.end(), extra);
    return run(a);
  };
  Result first = train({"--epochs", "1", "--checkpoint", "c.ckpt", "--out", "one.leanai"});
  ASSERT_EQ(first.rc, 0) << first.err;
  ASSERT_TRUE(fs::exists(cwd_ / "c.ckpt"));
  leanai::LoadedModel ck = leanai::load_model((cwd_ / "c.ckpt").string());
  EXPECT_TRUE(ck.is_checkpoint());
  EXPECT_EQ(ck.trainer_state.at("epochs_done"), 1);

  Result resumed = train({"--resume", "c.ckpt", "--epochs", "2", "--out", "resumed.leanai"});
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  const auto lines = resumed.json_lines();
  ASSERT_EQ(lines.size(), 2u) << "one more epoch, then the result:\n" << resumed.out;
  EXPECT_EQ(lines[0].at("stats").at("epoch"), 2);
  EXPECT_EQ(result_line(resumed).at("epochs"), 2);

  // The same as training two epochs straight.
  Result straight = train({"--epochs", "2", "--out", "straight.leanai"});
  ASSERT_EQ(straight.rc, 0) << straight.err;
  EXPECT_TRUE(same_params(leanai::load_model((cwd_ / "resumed.leanai").string()).graph,
                          leanai::load_model((cwd_ / "straight.leanai").string()).graph))
      << "resumed training differs from straight training";
  EXPECT_EQ(result_line(resumed).at("test"), result_line(straight).at("test"));

  // Nothing left to do: a clear error, and the output is not replaced.
  const std::string before = read_text((cwd_ / "resumed.leanai").string());
  const auto files = listing(cwd_);
  Result again = train({"--resume", "c.ckpt", "--epochs", "1", "--out", "resumed.leanai"});
  EXPECT_NE(again.rc, 0);
  ASSERT_EQ(again.err_lines().size(), 1u) << again.err;
  EXPECT_NE(again.err.find("already trained 1 epochs"), std::string::npos) << again.err;
  EXPECT_EQ(read_text((cwd_ / "resumed.leanai").string()), before);
  EXPECT_EQ(listing(cwd_), files);
}

// ---------------------------------------------------------------------------
// Data-efficient training: value, --select, --prune, --augment

TEST_F(Cli, ValueWritesScoresThatTrainSelectsFrom) {
  NEED_FMNIST();
  Result v = run({"value", "--model", "mlp", "--data", fm_, "--proxy-epochs", "2", "--threads", "1", "--out", "s.csv",
                  "--json"});
  ASSERT_EQ(v.rc, 0) << v.err;
  const json res = result_line(v);
  EXPECT_EQ(res.at("samples"), 600);
  EXPECT_EQ(res.at("cost").at("proxy_samples"), 1200);
  EXPECT_GT(res.at("scores").at("value").at("p90").get<double>(), res.at("scores").at("value").at("p10").get<double>());
  const std::vector<std::string> rows = lines_of(read_text((cwd_ / "s.csv").string()));
  ASSERT_EQ(rows.size(), 601u);
  EXPECT_EQ(rows[0], "index,label,entropy,el2n,grad_norm,forgetting,value");

  for (const char* method : {"top", "stratified", "random"}) {
    SCOPED_TRACE(method);
    Result t = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "2", "--threads", "1", "--select", method,
                    "--keep", "0.3", "--scores", "s.csv", "--selection-out", "chosen.csv", "--out", "sub.leanai",
                    "--json"});
    ASSERT_EQ(t.rc, 0) << t.err;
    const json c = result_line(t).at("compute");
    EXPECT_EQ(c.at("samples_seen"), 2 * 180);
    EXPECT_EQ(c.at("data_efficiency").at("selected"), 180);
    EXPECT_EQ(lines_of(read_text((cwd_ / "chosen.csv").string())).size(), 181u);
  }
  // Scores for other data are refused before training.
  write_text((cwd_ / "short.csv").string(), "index,label,entropy,el2n,grad_norm,forgetting,value\n0,1,0,0,0,0,0.5\n");
  expect_clean_error({"train", "--data", fm_, "--epochs", "1", "--select", "top", "--scores", "short.csv"},
                     {"short.csv"});
}

TEST_F(Cli, DynamicPruningAndAugmentationReportCompute) {
  NEED_FMNIST();
  Result p = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "4", "--threads", "1", "--prune", "dynamic",
                  "--prune-ratio", "0.7", "--out", "p.leanai", "--json"});
  ASSERT_EQ(p.rc, 0) << p.err;
  const json c = result_line(p).at("compute");
  EXPECT_LT(c.at("samples_seen").get<int64_t>(), 4 * 600);
  EXPECT_GT(c.at("samples_seen").get<int64_t>(), 2 * 600);  // the first and the annealed last epoch see everything
  EXPECT_EQ(c.at("data_efficiency").at("schedule").at("kind"), "dynamic");

  Result a = run({"train", "--model", "cnn", "--data", fm_, "--epochs", "1", "--threads", "1", "--augment",
                  "value-aware", "--proxy-epochs", "1", "--out", "a.leanai"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.out.find("sample-gradient steps"), std::string::npos) << a.out;
  EXPECT_TRUE(leanai::load_model((cwd_ / "a.leanai").string())
                  .info.at("training").at("config").at("augment").at("value_aware").get<bool>());
}

TEST_F(Cli, DataEfficiencyErrors) {
  NEED_FMNIST();
  const std::vector<std::string> base = {"train", "--data", fm_, "--epochs", "1"};
  auto with = [&](std::initializer_list<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra);
    return a;
  };
  expect_clean_error(with({"--select", "best"}), {"--select"});
  expect_clean_error(with({"--select", "top", "--keep", "0"}), {"--keep"});
  expect_clean_error(with({"--select", "top", "--prune", "dynamic"}), {"not both"});
  expect_clean_error(with({"--select", "top", "--scores", "missing.csv"}), {"missing.csv"});
  expect_clean_error(with({"--select", "top", "--weights", "loss=1"}), {"unknown score 'loss'"});
  expect_clean_error(with({"--selection-out", "x.csv"}), {"--selection-out needs --select"});
  expect_clean_error(with({"--prune-ratio", "1.5"}), {"--prune-ratio"});
  expect_clean_error({"value", "--data", fm_, "--weights", "entropy=-1"}, {"non-negative"});
  expect_clean_error({"value", "--data", fm_, "--out", "no-dir/s.csv"}, {"no-dir"});
}

TEST_F(Cli, SparseTrainingCompactsToFewerFlops) {
  NEED_FMNIST();
  Result t = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "2", "--threads", "1", "--sparsity", "0.7",
                  "--out", "sparse.leanai", "--json"});
  ASSERT_EQ(t.rc, 0) << t.err;
  // 600 images, 2 epochs, 70% of hidden neurons off: still far above chance (0.1).
  EXPECT_GT(result_line(t).at("test").at("accuracy").get<double>(), 0.4);
  const json saved = leanai::load_model((cwd_ / "sparse.leanai").string()).info;
  EXPECT_EQ(saved.at("sparsity").at("target"), 0.7);
  Result info = run({"info", "sparse.leanai", "--json"});
  ASSERT_EQ(info.rc, 0) << info.err;
  const json j = info.json_lines().at(0);
  const double dense = j.at("flops_per_sample").get<double>(), active = j.at("active_flops_per_sample").get<double>();
  // mlp 784-512-256-10 with 70% of both hidden layers off: about 3.3x fewer multiply-adds.
  EXPECT_LT(active, dense / 3.0) << "dense " << dense << " active " << active;
  // bench counts for the compiled plan the FLOPs it runs, for the Executor the dense ones.
  Result b = run({"bench", "sparse.leanai", "--batch", "2", "--seconds", "0.05", "--runs", "10", "--compare", "--json"});
  ASSERT_EQ(b.rc, 0) << b.err;
  for (const json& row : b.json_lines())
    EXPECT_DOUBLE_EQ(row.at("flops_per_sample").get<double>(), row.at("runner") == "leanai" ? active : dense) << row.dump();
  expect_clean_error({"train", "--data", fm_, "--epochs", "1", "--sparsity", "1.5"}, {"--sparsity"});
  expect_clean_error({"train", "--data", fm_, "--epochs", "1", "--sparsity", "0.5", "--gates", "magic"}, {"--gates"});
  expect_clean_error({"train", "--data", fm_, "--epochs", "1", "--dense-layers", "fc1"}, {"--dense-layers", "--sparsity"});
  expect_clean_error({"train", "--data", fm_, "--epochs", "1", "--sparsity", "0.5", "--dense-layers", "fc9", "--out", "x.leanai"},
                     {"--dense-layers", "'fc9'", "conv1, conv2, fc1"});
}

// --gates l0: hard-concrete gates, their penalty weight steered to close 70%
// of each hidden layer; --gates input: each hidden layer runs 2 of its 8
// neuron blocks per input. Both end at their sparsity, keep learning, and
// `leanai info` reports the active FLOPs.
TEST_F(Cli, L0AndInputGatesTrainToTheirSparsity) {
  NEED_FMNIST();
  // l0 gates need a few hundred steps to travel from open to closed: 6 epochs of 38 batches.
  Result l0 = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "6", "--batch-size", "16", "--threads", "1",
                   "--sparsity", "0.7", "--gates", "l0", "--out", "l0.leanai", "--json"});
  ASSERT_EQ(l0.rc, 0) << l0.err;
  const json r = result_line(l0);
  EXPECT_GT(r.at("test").at("accuracy").get<double>(), 0.4);
  // 70% of 512 and of 256 is 358.4 and 179.2: at most floor() close, so 537 of 768.
  EXPECT_NEAR(r.at("sparsity").at("off_share").get<double>(), 0.7, 0.02) << r.at("sparsity").dump();
  const json saved = leanai::load_model((cwd_ / "l0.leanai").string()).info;
  EXPECT_EQ(saved.at("sparsity").at("gates"), "l0");
  Result info = run({"info", "l0.leanai", "--json"});
  ASSERT_EQ(info.rc, 0) << info.err;
  json j = info.json_lines().at(0);
  // Closed neurons compacted away; the open ones' gates fold into the next layer.
  EXPECT_LT(j.at("active_flops_per_sample").get<double>(), j.at("flops_per_sample").get<double>() / 2.5);

  Result input = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "2", "--threads", "1", "--sparsity", "0.7",
                      "--gates", "input", "--out", "input.leanai", "--json"});
  ASSERT_EQ(input.rc, 0) << input.err;
  const json ri = result_line(input);
  EXPECT_GT(ri.at("test").at("accuracy").get<double>(), 0.4);
  for (const json& layer : ri.at("sparsity").at("layers")) {
    EXPECT_EQ(layer.at("top_k"), 2);
    EXPECT_EQ(layer.at("blocks"), 8);
  }
  info = run({"info", "input.leanai", "--json"});
  ASSERT_EQ(info.rc, 0) << info.err;
  j = info.json_lines().at(0);
  // Each input runs 2 of 8 blocks of both hidden layers, plus the small gate networks.
  const double dense = j.at("flops_per_sample").get<double>(), active = j.at("active_flops_per_sample").get<double>();
  EXPECT_LT(active, dense / 3.0) << "dense " << dense << " active " << active;
  // The same for input gates, where the Executor too runs only the chosen blocks.
  Result b = run({"bench", "input.leanai", "--batch", "2", "--seconds", "0.05", "--runs", "10", "--compare", "--json"});
  ASSERT_EQ(b.rc, 0) << b.err;
  for (const json& row : b.json_lines())
    EXPECT_DOUBLE_EQ(row.at("flops_per_sample").get<double>(), active) << row.dump();
  // The dense count is the model without gating: the plain mlp's.
  Result plain = run({"info", "mlp", "--json"});
  ASSERT_EQ(plain.rc, 0) << plain.err;
  EXPECT_EQ(plain.json_lines().at(0).at("flops_per_sample").get<double>(), dense);
  // Text output names the kind of gates and the share off.
  Result text = run({"train", "--model", "mlp", "--data", fm_, "--epochs", "1", "--threads", "1", "--sparsity", "0.5",
                     "--gates", "l0", "--out", "text.leanai", "-q"});
  ASSERT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("sparsity (l0 gates):"), std::string::npos) << text.out;
}

}  // namespace
