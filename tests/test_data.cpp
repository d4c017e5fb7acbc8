// Tests of the data layer: IDX and CSV loading, standardization, splitting,
// the batch loader and --data resolution.
#include <gtest/gtest.h>

#include "expect_error.h"

#include "temp_dir.h"
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/batch_loader.h"
#include "leanai/data/csv.h"
#include "leanai/data/data_source.h"
#include "leanai/data/gz_file.h"
#include "leanai/data/idx.h"
#include "leanai/data/split.h"
#include "leanai/data/standardizer.h"

namespace fs = std::filesystem;
using namespace leanai;
using leanai::test_support::expect_error;

namespace {

using leanai::test_support::TempDir;

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// IDX header: 0 0 code ndims, then each dim as big-endian u32.
std::vector<uint8_t> idx_header(uint8_t code, const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> h = {0, 0, code, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<uint8_t>(d >> shift));
  return h;
}

// CsvOptions for a label column (GCC 12 warns on designated initializers
// that leave members to their defaults).
CsvOptions csv_options(const std::string& label, Task task = Task::classification, bool standardize = true) {
  CsvOptions opt;
  opt.label_column = label;
  opt.task = task;
  opt.standardize = standardize;
  return opt;
}

Tensor u8_tensor(const Shape& shape, const std::vector<uint8_t>& values) {
  Tensor t = Tensor::empty(shape, DType::u8);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  std::copy(values.begin(), values.end(), t.data<uint8_t>());
  return t;
}

// A classification dataset whose feature i is the row index, so batches and
// subsets reveal which rows they hold.
std::shared_ptr<InMemoryDataset> indexed_dataset(const std::vector<int64_t>& labels, int64_t num_classes) {
  const int64_t n = static_cast<int64_t>(labels.size());
  Tensor x = Tensor::empty({n, 2});
  Tensor y = Tensor::empty({n}, DType::i64);
  for (int64_t i = 0; i < n; ++i) {
    x.data<float>()[2 * i] = static_cast<float>(i);
    x.data<float>()[2 * i + 1] = static_cast<float>(-i);
    y.data<int64_t>()[i] = labels[i];
  }
  return std::make_shared<InMemoryDataset>(x, y, Task::classification, num_classes);
}

std::shared_ptr<InMemoryDataset> indexed_dataset(int64_t n, int64_t num_classes) {
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = i % num_classes;
  return indexed_dataset(labels, num_classes);
}

// Row ids (feature 0) of a dataset built by indexed_dataset.
std::vector<int64_t> row_ids(const InMemoryDataset& d) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < d.size(); ++i) ids.push_back(static_cast<int64_t>(d.features().data<float>()[2 * i]));
  return ids;
}

// The row ids of every batch of one epoch.
std::vector<std::vector<int64_t>> epoch_batches(BatchLoader& loader, int epoch) {
  loader.start_epoch(epoch);
  std::vector<std::vector<int64_t>> out;
  Batch b;
  while (loader.next(b)) {
    std::vector<int64_t> ids;
    const int64_t width = b.x.numel() / b.size;
    for (int64_t i = 0; i < b.size; ++i) ids.push_back(static_cast<int64_t>(b.x.data<float>()[i * width]));
    out.push_back(ids);
  }
  return out;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

std::vector<int64_t> class_histogram(const InMemoryDataset& d) {
  std::vector<int64_t> h(d.num_outputs(), 0);
  for (int64_t i = 0; i < d.size(); ++i) ++h[d.targets().data<int64_t>()[i]];
  return h;
}

}  // namespace

// ---------------------------------------------------------------- dataset

TEST(InMemoryDataset, ValidatesTargets) {
  Tensor x = Tensor::zeros({3, 2});
  Tensor y = Tensor::zeros({3}, DType::i64);
  y.data<int64_t>()[1] = 4;
  expect_error([&] { InMemoryDataset(x, y, Task::classification, 3); }, {"class id 4", "[0, 3)"});
  expect_error([&] { InMemoryDataset(x, Tensor::zeros({2}, DType::i64), Task::classification, 5); }, {"i64 {3}"});
  expect_error([&] { InMemoryDataset(x, Tensor::zeros({3}), Task::regression, 1); }, {"f32 {3, 1}", "reshape"});
  expect_error([&] { InMemoryDataset(Tensor::zeros({3, 2}, DType::u8), y, Task::classification, 5); }, {"f32"});
  InMemoryDataset ok(x, Tensor::zeros({3, 2}), Task::regression, 2);
  EXPECT_EQ(ok.sample_shape(), (Shape{2}));
}

TEST(InMemoryDataset, GatherAndSubsetCopyRows) {
  auto d = indexed_dataset(10, 3);
  std::vector<int64_t> idx = {7, 2, 2};
  Tensor x = Tensor::empty({3, 2});
  Tensor y = Tensor::empty({3}, DType::i64);
  d->gather(idx.data(), 3, x, y);
  EXPECT_EQ(x.data<float>()[0], 7);
  EXPECT_EQ(x.data<float>()[1], -7);
  EXPECT_EQ(x.data<float>()[2], 2);
  EXPECT_EQ(y.data<int64_t>()[0], 1);
  EXPECT_EQ(y.data<int64_t>()[2], 2);
  auto sub = d->subset({9, 0});
  EXPECT_EQ(row_ids(*sub), (std::vector<int64_t>{9, 0}));
  EXPECT_EQ(sub->num_outputs(), 3);
  std::vector<int64_t> bad = {10};
  Tensor x1 = Tensor::empty({1, 2}), y1 = Tensor::empty({1}, DType::i64);
  expect_error([&] { d->gather(bad.data(), 1, x1, y1); }, {"index 10", "10 samples"});
}

// ---------------------------------------------------------------- IDX

TEST(Idx, ReadsHandWrittenPlainFile) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_header(0x08, {2, 3, 4});
  for (int i = 0; i < 24; ++i) bytes.push_back(static_cast<uint8_t>(i * 10));
  write_bytes(dir.file("a.idx"), bytes);
  Tensor t = read_idx(dir.file("a.idx"));
  EXPECT_EQ(t.dtype(), DType::u8);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.data<uint8_t>()[i], i * 10);
}

TEST(Idx, DecodesBigEndianWideTypes) {
  TempDir dir;
  std::vector<uint8_t> i16 = idx_header(0x0B, {2});
  for (uint8_t b : {0x01, 0x02, 0xFF, 0xFE}) i16.push_back(b);  // 258, -2
  write_bytes(dir.file("i16.idx"), i16);
  Tensor a = read_idx(dir.file("i16.idx"));
  ASSERT_EQ(a.dtype(), DType::i32);
  EXPECT_EQ(a.data<int32_t>()[0], 258);
  EXPECT_EQ(a.data<int32_t>()[1], -2);

  std::vector<uint8_t> f64 = idx_header(0x0E, {1});
  for (uint8_t b : {0xC0, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}) f64.push_back(b);  // -3.125
  write_bytes(dir.file("f64.idx"), f64);
  Tensor b = read_idx(dir.file("f64.idx"));
  ASSERT_EQ(b.dtype(), DType::f32);
  EXPECT_EQ(b.data<float>()[0], -3.125f);
}

TEST(Idx, RoundTripsGzipAndPlain) {
  TempDir dir;
  Tensor u8 = u8_tensor({2, 3}, {0, 1, 127, 128, 254, 255});
  Tensor i32 = Tensor::empty({3}, DType::i32);
  i32.data<int32_t>()[0] = -70000;
  i32.data<int32_t>()[1] = 0;
  i32.data<int32_t>()[2] = 123456789;
  Tensor f32 = Tensor::from_vector({2, 2}, {1.5f, -0.25f, 3e10f, -7.0f});
  for (const char* ext : {".idx", ".idx.gz"}) {
    for (const Tensor& t : {u8, i32, f32}) {
      const std::string path = dir.file(std::string("t_") + dtype_name(t.dtype()) + ext);
      write_idx(path, t);
      const std::vector<uint8_t> raw = read_bytes(path);
      ASSERT_GE(raw.size(), 2u);
      if (std::string(ext) == ".idx.gz") {
        EXPECT_EQ(raw[0], 0x1f);  // gzip magic: really compressed
        EXPECT_EQ(raw[1], 0x8b);
      } else {
        EXPECT_EQ(raw[0], 0);
        EXPECT_EQ(raw[1], 0);
      }
      Tensor back = read_idx(path);
      EXPECT_EQ(back.dtype(), t.dtype());
      EXPECT_EQ(back.shape(), t.shape());
      EXPECT_EQ(std::memcmp(back.raw(), t.raw(), t.nbytes()), 0) << path;
    }
  }
  // Big-endian on disk: i32 -70000 is FF FE EE 90 right after the header.
  const std::vector<uint8_t> raw = read_bytes(dir.file("t_I32.idx"));
  ASSERT_EQ(raw.size(), 8u + 12u);
  EXPECT_EQ((std::vector<uint8_t>(raw.begin() + 8, raw.begin() + 12)), (std::vector<uint8_t>{0xFF, 0xFE, 0xEE, 0x90}));
}

TEST(Idx, RejectsTruncatedData) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_header(0x08, {2, 3, 4});
  bytes.resize(bytes.size() + 10, 7);
  write_bytes(dir.file("short.idx"), bytes);
  expect_error([&] { read_idx(dir.file("short.idx")); },
               {"short.idx", "truncated", "2x3x4", "24 bytes", "found 10", "re-download"});
}

TEST(Idx, RejectsCutOffGzip) {
  TempDir dir;
  Tensor t = Tensor::empty({64, 64}, DType::u8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>((i * 7919) >> 3);
  write_idx(dir.file("full.gz"), t);
  std::vector<uint8_t> gz = read_bytes(dir.file("full.gz"));
  gz.resize(gz.size() / 2);
  write_bytes(dir.file("cut.gz"), gz);
  expect_error([&] { read_idx(dir.file("cut.gz")); }, {"cut.gz", "truncated", "64x64"});
}

TEST(Idx, RejectsTrailingBytes) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_header(0x08, {4});
  bytes.resize(bytes.size() + 4 + 3, 1);
  write_bytes(dir.file("long.idx"), bytes);
  expect_error([&] { read_idx(dir.file("long.idx")); }, {"long.idx", "3 trailing bytes", "4 bytes of data"});
}

TEST(Idx, RejectsBadHeaders) {
  TempDir dir;
  write_bytes(dir.file("magic.idx"), {0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 0});
  expect_error([&] { read_idx(dir.file("magic.idx")); }, {"magic.idx", "bad magic"});
  write_bytes(dir.file("code.idx"), {0, 0, 0x0A, 0x01, 0, 0, 0, 0});
  expect_error([&] { read_idx(dir.file("code.idx")); }, {"unknown IDX type code 0x0A"});
  write_bytes(dir.file("nodims.idx"), {0, 0, 0x08, 0x00});
  expect_error([&] { read_idx(dir.file("nodims.idx")); }, {"0 dimensions"});
  write_bytes(dir.file("dims.idx"), {0, 0, 0x08, 0x03, 0, 0, 0, 2});
  expect_error([&] { read_idx(dir.file("dims.idx")); }, {"truncated IDX header", "3 dimensions"});
  write_bytes(dir.file("huge.idx"), idx_header(0x0E, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}));
  expect_error([&] { read_idx(dir.file("huge.idx")); }, {"implausible"});
  write_bytes(dir.file("empty.idx"), {});
  expect_error([&] { read_idx(dir.file("empty.idx")); }, {"not an IDX file", "0 bytes"});
  expect_error([&] { read_idx(dir.file("missing.idx")); }, {"missing.idx", "no such file"});
  expect_error([&] { read_idx(dir.str()); }, {"is a directory"});
}

TEST(Idx, RejectsCorruptGzip) {
  TempDir dir;
  // A valid gzip header followed by garbage where deflate data should be.
  write_bytes(dir.file("bad.gz"), {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  expect_error([&] { read_idx(dir.file("bad.gz")); }, {"bad.gz"});
}

TEST(Idx, ImageDatasetNormalizesAndChecks) {
  TempDir dir;
  write_idx(dir.file("img.gz"), u8_tensor({3, 2, 2}, {0, 255, 0, 255, 51, 51, 51, 51, 0, 0, 0, 0}));
  write_idx(dir.file("lab.gz"), u8_tensor({3}, {4, 0, 2}));
  auto d = load_idx_dataset(dir.file("img.gz"), dir.file("lab.gz"));
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->sample_shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(d->num_outputs(), 5);
  EXPECT_EQ(d->targets().dtype(), DType::i64);
  EXPECT_EQ(d->targets().data<int64_t>()[0], 4);
  const float* x = d->features().data<float>();
  EXPECT_NEAR(x[0], (0.0f - 0.2860f) / 0.3530f, 1e-6);
  EXPECT_NEAR(x[1], (1.0f - 0.2860f) / 0.3530f, 1e-6);
  EXPECT_NEAR(x[4], (0.2f - 0.2860f) / 0.3530f, 1e-6);

  IdxImageOptions opt;
  opt.mean = 0.5f;
  opt.std = 0.5f;
  opt.num_classes = 10;
  auto e = load_idx_dataset(dir.file("img.gz"), dir.file("lab.gz"), opt);
  EXPECT_EQ(e->num_outputs(), 10);
  EXPECT_NEAR(e->features().data<float>()[1], 1.0f, 1e-6);

  opt.num_classes = 3;
  expect_error([&] { load_idx_dataset(dir.file("img.gz"), dir.file("lab.gz"), opt); }, {"label 4", "3 classes"});
  write_idx(dir.file("lab2.gz"), u8_tensor({2}, {1, 1}));
  expect_error([&] { load_idx_dataset(dir.file("img.gz"), dir.file("lab2.gz")); }, {"2 labels", "3 images"});
  expect_error([&] { load_idx_dataset(dir.file("lab.gz"), dir.file("img.gz")); }, {"images"});
}

TEST(Idx, ResolvesDirectoryOfIdxFiles) {
  TempDir dir;
  write_idx(dir.file("train-images-idx3-ubyte.gz"), u8_tensor({4, 1, 2}, {0, 1, 2, 3, 4, 5, 6, 7}));
  write_idx(dir.file("train-labels-idx1-ubyte.gz"), u8_tensor({4}, {0, 1, 2, 1}));
  write_idx(dir.file("t10k-images-idx3-ubyte"), u8_tensor({2, 1, 2}, {9, 9, 9, 9}));  // plain works too
  write_idx(dir.file("t10k-labels-idx1-ubyte.gz"), u8_tensor({2}, {3, 0}));
  DataSource src = resolve_data(dir.str());
  ASSERT_TRUE(src.test);
  EXPECT_EQ(src.train->size(), 4);
  EXPECT_EQ(src.test->size(), 2);
  // The test split has label 3: both splits agree on 4 classes.
  EXPECT_EQ(src.train->num_outputs(), 4);
  EXPECT_EQ(src.test->num_outputs(), 4);
  EXPECT_EQ(src.class_names.size(), 4u);
  EXPECT_FALSE(src.standardize);

  fs::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  expect_error([&] { resolve_data(dir.str()); }, {"t10k-labels-idx1-ubyte.gz"});
  expect_error([&] { resolve_data(dir.file("nothing-here")); }, {"fashion-mnist", ".csv", "no such file"});
}

TEST(FashionMnist, LoadsBothSplitsWithBalancedClasses) {
  if (!has_mnist_files(kFashionMnistDir)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  DataSource src = resolve_data("fashion-mnist");
  ASSERT_TRUE(src.train && src.test);
  EXPECT_EQ(src.train->size(), 60000);
  EXPECT_EQ(src.test->size(), 10000);
  EXPECT_EQ(src.train->sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(src.train->num_outputs(), 10);
  EXPECT_EQ(src.test->num_outputs(), 10);
  EXPECT_EQ(src.class_names.front(), "T-shirt/top");
  EXPECT_EQ(class_histogram(*src.train), std::vector<int64_t>(10, 6000));
  EXPECT_EQ(class_histogram(*src.test), std::vector<int64_t>(10, 1000));
  // The reference normalization makes the training pixels mean ~0, std ~1.
  const float* x = src.train->features().data<float>();
  const int64_t n = src.train->features().numel();
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += x[i];
    sq += double(x[i]) * x[i];
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sd, 1.0, 0.01);
}

// ---------------------------------------------------------------- CSV

TEST(Csv, StringLabelsGetSortedIds) {
  const std::string text =
      "sepal,petal,species\n"
      "1.5,2,virginica\n"
      "2,-3.5e1,setosa\n"
      "+4,  5 ,versicolor\n"
      "6,7,setosa\n";
  CsvTable t = parse_csv(text, "iris.csv", csv_options("species"));
  EXPECT_EQ(t.class_names, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"sepal", "petal"}));
  auto& d = *t.dataset;
  EXPECT_EQ(d.size(), 4);
  EXPECT_EQ(d.num_outputs(), 3);
  EXPECT_EQ(d.sample_shape(), (Shape{2}));
  const int64_t* y = d.targets().data<int64_t>();
  EXPECT_EQ((std::vector<int64_t>(y, y + 4)), (std::vector<int64_t>{2, 0, 1, 0}));
  const float* x = d.features().data<float>();
  EXPECT_EQ((std::vector<float>(x, x + 8)), (std::vector<float>{1.5f, 2, 2, -35, 4, 5, 6, 7}));
}

TEST(Csv, IntegerLabelsAreTheirOwnIds) {
  CsvTable t = parse_csv("a,label,b\n1,3,2\n3,0,4\n5,3,6\n", "t.csv", csv_options("label"));
  EXPECT_EQ(t.dataset->num_outputs(), 4);
  EXPECT_EQ(t.class_names, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(t.dataset->targets().data<int64_t>()[0], 3);
  EXPECT_EQ(t.dataset->targets().data<int64_t>()[1], 0);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.dataset->features().data<float>()[1], 2.0f);
  // A negative label makes the labels strings: "-1" < "1".
  CsvTable s = parse_csv("x,y\n0,1\n0,-1\n", "t.csv");
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"-1", "1"}));
  EXPECT_EQ(s.dataset->targets().data<int64_t>()[0], 1);
}

TEST(Csv, RegressionQuotesCrlfBomIgnoredColumns) {
  const std::string text =
      "\xEF\xBB\xBF\"id\",\"x 1\",\"x,2\",\"price\"\r\n"
      "a,1,2,10.5\r\n"
      "\r\n"
      "\"b \"\"quoted\"\"\",3,4,-2\r\n";
  CsvOptions opt = csv_options("price", Task::regression);
  opt.ignore_columns = {"id"};
  CsvTable t = parse_csv(text, "r.csv", opt);
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"x 1", "x,2"}));
  EXPECT_TRUE(t.class_names.empty());
  auto& d = *t.dataset;
  EXPECT_EQ(d.task(), Task::regression);
  EXPECT_EQ(d.targets().shape(), (Shape{2, 1}));
  EXPECT_EQ(d.targets().data<float>()[0], 10.5f);
  EXPECT_EQ(d.targets().data<float>()[1], -2.0f);
  EXPECT_EQ(d.features().data<float>()[2], 3.0f);
}

TEST(Csv, LoadsGzipFileAndDefaultsToLastColumn) {
  TempDir dir;
  GzWriter w(dir.file("t.csv.gz"));
  const std::string text = "f,g,cls\n1,2,b\n3,4,a\n";
  w.write(text.data(), text.size());
  w.close();
  CsvTable t = load_csv(dir.file("t.csv.gz"));
  EXPECT_EQ(t.label_column, "cls");
  EXPECT_EQ(t.class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.dataset->size(), 2);
}

TEST(Csv, ErrorsSayWhatAndWhere) {
  expect_error([] { parse_csv("", "e.csv"); }, {"e.csv", "empty file", "header"});
  expect_error([] { parse_csv("\n\n", "e.csv"); }, {"empty file"});
  expect_error([] { parse_csv("a,b\n", "h.csv"); }, {"h.csv", "no data rows"});
  expect_error([] { parse_csv("a,b,c\n1,2,3\n", "m.csv", csv_options("y")); },
               {"m.csv", "no column named 'y'", "a, b, c"});
  expect_error([] { parse_csv("a,b,c\n1,2,3\n4,5\n", "r.csv"); }, {"r.csv", "line 3", "2 fields", "header has 3"});
  expect_error([] { parse_csv("a,b,c\n1,2,3\n4,x5,6\n", "n.csv"); },
               {"n.csv", "line 3", "column 2 'b'", "'x5'", "not a finite number"});
  expect_error([] { parse_csv("a,b,c\n1,,3\n", "n.csv"); }, {"line 2", "column 2 'b'"});
  expect_error([] { parse_csv("a,b,c\n1,nan,3\n", "n.csv"); }, {"'nan'"});
  expect_error([] { parse_csv("a,b\n1,\n", "l.csv"); }, {"empty label"});
  expect_error([] { parse_csv("a,b\n1,x\n", "l.csv", csv_options("", Task::regression)); }, {"line 2", "regression"});
  expect_error([] { parse_csv("a,b\n1,\"x\n", "q.csv"); }, {"q.csv", "line 2", "never closed"});
  CsvOptions ignore_zz;
  ignore_zz.ignore_columns = {"zz"};
  expect_error([&] { parse_csv("a,b\n1,2\n", "d.csv", ignore_zz); }, {"no column named 'zz'"});
  expect_error([] { parse_csv("b\n1\n", "f.csv"); }, {"no feature columns"});
  expect_error([] { parse_csv("a,b\n1,900000000\n", "big.csv"); }, {"too large"});
  expect_error([] { load_csv("/nonexistent/x.csv"); }, {"/nonexistent/x.csv", "no such file"});
}

// ---------------------------------------------------------------- standardizer

TEST(Standardizer, FitsPerFeatureAndRoundTripsJson) {
  Tensor x = Tensor::from_vector({4, 3}, {1, 5, 10, 3, 5, 20, 5, 5, 30, 7, 5, 40});
  Standardizer s = Standardizer::fit(x, {"a", "b", "c"});
  EXPECT_FLOAT_EQ(s.mean()[0], 4.0f);
  EXPECT_FLOAT_EQ(s.stddev()[0], std::sqrt(5.0f));
  EXPECT_FLOAT_EQ(s.stddev()[1], 1.0f);  // constant column
  Tensor z = s.apply(x);
  EXPECT_FLOAT_EQ(z.data<float>()[1], 0.0f);
  EXPECT_FLOAT_EQ(z.data<float>()[2], -1.5f / std::sqrt(1.25f));

  Standardizer back = Standardizer::from_json(nlohmann::json::parse(s.to_json().dump()));
  EXPECT_EQ(back.mean(), s.mean());
  EXPECT_EQ(back.stddev(), s.stddev());
  EXPECT_EQ(back.feature_names(), s.feature_names());

  expect_error([] { Standardizer::from_json({{"mean", {1.0}}}); }, {"\"std\""});
  expect_error([] { Standardizer::from_json({{"mean", {1.0}}, {"std", {0.0}}}); }, {"positive"});
  expect_error([] { Standardizer::from_json({{"mean", {1.0, 2.0}}, {"std", {1.0}}}); }, {"2 values"});
  expect_error([] { Standardizer::from_json({{"mean", {"x"}}, {"std", {1.0}}}); }, {"wrong value type"});
  expect_error([&] { s.apply(Tensor::zeros({2, 2})); }, {"{N, 3}"});
}

TEST(Standardizer, CsvSplitFitsOnTrainingRowsOnly) {
  TempDir dir;
  // Feature u grows with the row, so train and validation means differ.
  std::string text = "u,v,label\n";
  for (int i = 0; i < 40; ++i)
    text += std::to_string(i * i) + "," + std::to_string(i % 7) + "," + (i % 2 ? "odd" : "even") + "\n";
  write_text(dir.file("t.csv"), text);
  DataSource src = resolve_data(dir.file("t.csv"), csv_options("label"));
  EXPECT_FALSE(src.test);
  EXPECT_TRUE(src.standardize);
  PreparedData d = prepare_splits(src, 0.25, 11);
  ASSERT_TRUE(d.standardizer);
  EXPECT_EQ(d.train->size(), 30);
  EXPECT_EQ(d.test->size(), 10);

  // The means must be those of the 30 training rows, not of all 40.
  const SplitIndices idx = train_val_split_indices(*src.train, 0.25, 11);
  double train_mean = 0, all_mean = 0;
  for (int64_t r : idx.train) train_mean += double(r) * r;
  train_mean /= idx.train.size();
  for (int i = 0; i < 40; ++i) all_mean += double(i) * i;
  all_mean /= 40;
  ASSERT_GT(std::abs(train_mean - all_mean), 1.0);
  EXPECT_NEAR(d.standardizer->mean()[0], train_mean, 1e-3);

  // Training features come out with mean 0, std 1; validation ones need not.
  for (int j = 0; j < 2; ++j) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < d.train->size(); ++i) {
      const float v = d.train->features().data<float>()[2 * i + j];
      sum += v;
      sq += double(v) * v;
    }
    EXPECT_NEAR(sum / 30, 0.0, 1e-5);
    EXPECT_NEAR(sq / 30, 1.0, 1e-4);
  }
  // A validation row is scaled with the training statistics.
  const float raw_u = static_cast<float>(idx.val[0] * idx.val[0]);
  EXPECT_NEAR(d.test->features().data<float>()[0], (raw_u - d.standardizer->mean()[0]) / d.standardizer->stddev()[0],
              1e-4);
  EXPECT_EQ(d.standardizer->feature_names(), (std::vector<std::string>{"u", "v"}));

  DataSource raw = resolve_data(dir.file("t.csv"), csv_options("label", Task::classification, false));
  EXPECT_FALSE(prepare_splits(raw, 0.25, 11).standardizer);
}

// ---------------------------------------------------------------- split

TEST(Split, StratifiedDisjointCompleteDeterministic) {
  std::vector<int64_t> labels;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < (c == 0 ? 50 : c == 1 ? 30 : 20); ++i) labels.push_back(c);
  // Interleave the classes so rows are not grouped by class.
  std::vector<int64_t> mixed;
  for (size_t i = 0; i < labels.size(); ++i) mixed.push_back(labels[(i * 37) % labels.size()]);
  auto d = indexed_dataset(mixed, 3);

  const SplitIndices a = train_val_split_indices(*d, 0.2, 5);
  EXPECT_EQ(a.val.size(), 20u);
  EXPECT_EQ(a.train.size(), 80u);
  std::set<int64_t> all(a.train.begin(), a.train.end());
  all.insert(a.val.begin(), a.val.end());
  EXPECT_EQ(all.size(), 100u);  // disjoint and complete
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 99);

  auto [train, val] = train_val_split(*d, 0.2, 5);
  EXPECT_EQ(class_histogram(*val), (std::vector<int64_t>{10, 6, 4}));
  EXPECT_EQ(class_histogram(*train), (std::vector<int64_t>{40, 24, 16}));
  EXPECT_EQ(row_ids(*val), a.val);
  EXPECT_EQ(row_ids(*train), a.train);

  EXPECT_EQ(train_val_split_indices(*d, 0.2, 5).val, a.val);
  EXPECT_NE(train_val_split_indices(*d, 0.2, 6).val, a.val);
}

TEST(Split, ExactTotalForUnevenClassesAndRegression) {
  auto d = indexed_dataset(std::vector<int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2}, 3);
  const SplitIndices s = train_val_split_indices(*d, 0.3, 1);
  EXPECT_EQ(s.val.size(), 3u);  // round(11 * 0.3)
  EXPECT_EQ(s.train.size(), 8u);

  Tensor x = Tensor::empty({10, 1}), y = Tensor::empty({10, 1});
  for (int i = 0; i < 10; ++i) x.data<float>()[i] = y.data<float>()[i] = static_cast<float>(i);
  InMemoryDataset r(x, y, Task::regression, 1);
  auto [rt, rv] = train_val_split(r, 0.5, 3);
  EXPECT_EQ(rt->size(), 5);
  EXPECT_EQ(rv->size(), 5);
  EXPECT_EQ(rv->targets().data<float>()[0], rv->features().data<float>()[0]);

  expect_error([&] { train_val_split(*d, 0.0, 1); }, {"between 0 and 1"});
  expect_error([&] { train_val_split(*d, 1.0, 1); }, {"between 0 and 1"});
  expect_error([&] { train_val_split(*d, 0.01, 1); }, {"empty"});
}

// ---------------------------------------------------------------- batch loader

TEST(BatchLoader, CoversEveryRowOncePerEpochWithPartialLastBatch) {
  auto d = indexed_dataset(103, 4);
  BatchLoader loader(d, 10, true, 42);
  EXPECT_EQ(loader.batches_per_epoch(), 11);
  const auto batches = epoch_batches(loader, 0);
  ASSERT_EQ(batches.size(), 11u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(batches[i].size(), 10u);
  EXPECT_EQ(batches[10].size(), 3u);
  std::vector<int64_t> all = flatten(batches);
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(103);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
}

TEST(BatchLoader, TargetsMatchFeaturesAndViewsHaveBatchRows) {
  auto d = indexed_dataset(25, 3);
  BatchLoader loader(d, 8, true, 1);
  loader.start_epoch(0);
  Batch b;
  int64_t seen = 0;
  while (loader.next(b)) {
    EXPECT_EQ(b.x.shape(), (Shape{b.size, 2}));
    EXPECT_EQ(b.y.shape(), (Shape{b.size}));
    for (int64_t i = 0; i < b.size; ++i) {
      const int64_t row = static_cast<int64_t>(b.x.data<float>()[2 * i]);
      EXPECT_EQ(b.x.data<float>()[2 * i + 1], -row);
      EXPECT_EQ(b.y.data<int64_t>()[i], row % 3);
    }
    seen += b.size;
  }
  EXPECT_EQ(seen, 25);
  EXPECT_FALSE(loader.next(b));  // stays over
}

TEST(BatchLoader, DeterministicPerSeedAndDiffersBetweenEpochs) {
  auto d = indexed_dataset(200, 2);
  BatchLoader a(d, 16, true, 7), b(d, 16, true, 7), c(d, 16, true, 8);
  const auto a0 = flatten(epoch_batches(a, 0));
  const auto a1 = flatten(epoch_batches(a, 1));
  EXPECT_EQ(flatten(epoch_batches(b, 0)), a0);
  EXPECT_EQ(flatten(epoch_batches(b, 1)), a1);
  EXPECT_NE(a0, a1);
  EXPECT_NE(flatten(epoch_batches(c, 0)), a0);
  EXPECT_EQ(flatten(epoch_batches(a, 0)), a0);  // an epoch replays exactly
  std::vector<int64_t> identity(200);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(a0, identity);

  BatchLoader ordered(d, 16, false, 7);
  EXPECT_EQ(flatten(epoch_batches(ordered, 3)), identity);
}

TEST(BatchLoader, DropLastSkipsThePartialBatch) {
  auto d = indexed_dataset(103, 4);
  BatchLoader loader(d, 10, true, 3, /*drop_last=*/true);
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  const auto batches = epoch_batches(loader, 0);
  ASSERT_EQ(batches.size(), 10u);
  std::set<int64_t> rows;
  for (const auto& b : batches) {
    EXPECT_EQ(b.size(), 10u);
    rows.insert(b.begin(), b.end());
  }
  EXPECT_EQ(rows.size(), 100u);
}

TEST(BatchLoader, BatchLargerThanDatasetAndRegressionTargets) {
  Tensor x = Tensor::empty({5, 3}), y = Tensor::empty({5, 2});
  for (int i = 0; i < 15; ++i) x.data<float>()[i] = static_cast<float>(i);
  for (int i = 0; i < 10; ++i) y.data<float>()[i] = static_cast<float>(100 + i);
  auto d = std::make_shared<InMemoryDataset>(x, y, Task::regression, 2);
  BatchLoader loader(d, 64, false, 0);
  EXPECT_EQ(loader.batches_per_epoch(), 1);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(b.size, 5);
  EXPECT_EQ(b.y.shape(), (Shape{5, 2}));
  EXPECT_EQ(b.y.data<float>()[9], 109.0f);
  EXPECT_FALSE(loader.next(b));
  BatchLoader dropped(d, 64, false, 0, true);
  EXPECT_EQ(dropped.batches_per_epoch(), 0);
  dropped.start_epoch(0);
  EXPECT_FALSE(dropped.next(b));
}

TEST(BatchLoader, StopsCleanlyMidEpochAndRestarts) {
  auto d = indexed_dataset(1000, 10);
  {
    BatchLoader never_started(d, 10, true, 1);
  }
  {
    BatchLoader loader(d, 10, true, 1);
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
  }  // destroyed with the worker one batch ahead
  BatchLoader loader(d, 7, true, 1);
  const auto full = flatten(epoch_batches(loader, 2));
  loader.start_epoch(2);
  Batch b;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(flatten(epoch_batches(loader, 2)), full);  // restarting mid-epoch gives the whole epoch
  // Many short epochs: exercises the hand-over between the two threads.
  auto small = indexed_dataset(50, 5);
  BatchLoader churn(small, 3, true, 9);
  for (int e = 0; e < 300; ++e) ASSERT_EQ(flatten(epoch_batches(churn, e)).size(), 50u);
}

TEST(BatchLoader, ReportsMisuseAndGatherErrors) {
  auto d = indexed_dataset(10, 2);
  expect_error([&] { BatchLoader(d, 0, true, 1); }, {"batch size"});
  expect_error([&] { BatchLoader(nullptr, 4, true, 1); }, {"no dataset"});
  BatchLoader loader(d, 4, true, 1);
  Batch b;
  expect_error([&] { loader.next(b); }, {"start_epoch"});

  // A dataset whose rows cannot be read: the worker's error reaches next().
  struct Broken : Dataset {
    int64_t size() const override { return 6; }
    Shape sample_shape() const override { return {1}; }
    Task task() const override { return Task::classification; }
    int64_t num_outputs() const override { return 2; }
    void gather(const int64_t*, int64_t, Tensor&, Tensor&) const override { throw Error("disk went away"); }
  };
  BatchLoader broken(std::make_shared<Broken>(), 4, false, 0);
  broken.start_epoch(0);
  expect_error([&] { broken.next(b); }, {"disk went away"});
  expect_error([&] { broken.next(b); }, {"disk went away"});
}

// ---------------------------------------------------------------- robustness

// Damaged inputs either load or throw leanai::Error: never another exception, never a crash.
TEST(Robustness, CorruptedFilesOnlyThrowError) {
  TempDir dir;
  Tensor img = Tensor::empty({4, 3, 3}, DType::u8);
  for (int64_t i = 0; i < img.numel(); ++i) img.data<uint8_t>()[i] = static_cast<uint8_t>(i * 13);
  write_idx(dir.file("ok.idx"), img);
  write_idx(dir.file("ok.idx.gz"), img);
  const std::string csv = "a,\"b\",label\n1,2,x\n3.5,-4,y\n5,6,x\n";
  Rng rng(123);
  int errors = 0;
  for (int round = 0; round < 300; ++round) {
    const int kind = round % 3;
    std::vector<uint8_t> bytes = kind == 0 ? read_bytes(dir.file("ok.idx"))
                                 : kind == 1 ? read_bytes(dir.file("ok.idx.gz"))
                                             : std::vector<uint8_t>(csv.begin(), csv.end());
    // Flip, drop or append a few bytes.
    for (int m = 0, edits = 1 + static_cast<int>(rng.below(3)); m < edits && !bytes.empty(); ++m) {
      const size_t at = rng.below(bytes.size());
      switch (rng.below(3)) {
        case 0: bytes[at] = static_cast<uint8_t>(rng.next_u64()); break;
        case 1: bytes.resize(at); break;
        default: bytes.push_back(static_cast<uint8_t>(rng.next_u64())); break;
      }
    }
    const std::string path = dir.file(kind == 1 ? "bad.gz" : kind == 0 ? "bad.idx" : "bad.csv");
    write_bytes(path, bytes);
    try {
      if (kind == 2) {
        load_csv(path);
      } else {
        read_idx(path);
      }
    } catch (const Error&) {
      ++errors;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << ": not a leanai::Error: " << e.what();
    }
  }
  EXPECT_GT(errors, 100);  // the damage was real
}

// ---------------------------------------------------------------- a real table

// scikit-learn (Debian python3-sklearn) ships small classic tables in its own
// CSV layout: a first line "n_samples,n_features,class names...", then rows
// with an integer class id last. LEANAI_SKLEARN_DATA may point elsewhere.
namespace {

std::string sklearn_data_dir() {
  if (const char* env = std::getenv("LEANAI_SKLEARN_DATA")) return env;
  return "/usr/lib/python3/dist-packages/sklearn/datasets/data";
}

// Rewrites a scikit-learn table as a plain CSV with a header row and, with
// names, the class names as labels.
std::string sklearn_to_csv(const std::string& path, const std::vector<std::string>& feature_names, bool string_labels) {
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  std::vector<std::string> meta;
  std::stringstream ss(first);
  for (std::string cell; std::getline(ss, cell, ',');) meta.push_back(cell);
  std::string out;
  for (const std::string& f : feature_names) out += f + ",";
  out += "target\n";
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const size_t comma = line.rfind(',');
    const std::string label = line.substr(comma + 1);
    out += line.substr(0, comma + 1) + (string_labels ? meta[2 + std::stoi(label)] : label) + "\n";
  }
  return out;
}

std::string feature_name(int i) {
  std::string name = "f";
  name += std::to_string(i);
  return name;
}

}  // namespace

TEST(RealTable, SklearnIrisWineBreastCancer) {
  const std::string dir = sklearn_data_dir();
  if (!fs::exists(dir + "/iris.csv")) GTEST_SKIP() << "python3-sklearn's data files are not in " << dir;
  TempDir tmp;
  write_text(tmp.file("iris.csv"),
             sklearn_to_csv(dir + "/iris.csv", {"sepal_length", "sepal_width", "petal_length", "petal_width"}, true));
  CsvTable iris = load_csv(tmp.file("iris.csv"), csv_options("target"));
  EXPECT_EQ(iris.dataset->size(), 150);
  EXPECT_EQ(iris.dataset->sample_shape(), (Shape{4}));
  EXPECT_EQ(iris.class_names, (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
  EXPECT_EQ(class_histogram(*iris.dataset), (std::vector<int64_t>{50, 50, 50}));
  EXPECT_FLOAT_EQ(iris.dataset->features().data<float>()[0], 5.1f);

  std::vector<std::string> wine_features;
  for (int i = 0; i < 13; ++i) wine_features.push_back(feature_name(i));
  write_text(tmp.file("wine.csv"), sklearn_to_csv(dir + "/wine_data.csv", wine_features, false));
  CsvTable wine = load_csv(tmp.file("wine.csv"));
  EXPECT_EQ(wine.dataset->size(), 178);
  EXPECT_EQ(class_histogram(*wine.dataset), (std::vector<int64_t>{59, 71, 48}));

  std::vector<std::string> bc_features;
  for (int i = 0; i < 30; ++i) bc_features.push_back(feature_name(i));
  write_text(tmp.file("bc.csv"), sklearn_to_csv(dir + "/breast_cancer.csv", bc_features, false));
  CsvTable bc = load_csv(tmp.file("bc.csv"));
  EXPECT_EQ(bc.dataset->size(), 569);
  EXPECT_EQ(class_histogram(*bc.dataset), (std::vector<int64_t>{212, 357}));

  // Boston house prices: a count line, then a quoted header; regression on MEDV.
  std::ifstream in(dir + "/boston_house_prices.csv");
  std::string skip;
  std::getline(in, skip);
  write_text(tmp.file("boston.csv"), std::string(std::istreambuf_iterator<char>(in), {}));
  CsvTable boston = load_csv(tmp.file("boston.csv"), csv_options("MEDV", Task::regression));
  EXPECT_EQ(boston.dataset->size(), 506);
  EXPECT_EQ(boston.feature_names.size(), 13u);
  EXPECT_EQ(boston.feature_names.front(), "CRIM");
  EXPECT_FLOAT_EQ(boston.dataset->targets().data<float>()[0], 24.0f);

  // End to end: split and standardize like the CLI would.
  DataSource src = resolve_data(tmp.file("iris.csv"), csv_options("target"));
  PreparedData d = prepare_splits(src, 0.2, 1);
  EXPECT_EQ(d.train->size(), 120);
  EXPECT_EQ(class_histogram(*d.test), (std::vector<int64_t>{10, 10, 10}));
}
