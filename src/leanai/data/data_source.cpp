#include "leanai/data/data_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <tuple>

#include "leanai/core/error.h"
#include "leanai/data/idx.h"
#include "leanai/data/split.h"

namespace leanai {

namespace {

bool has_suffix_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), s.end() - suffix.size(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

DataSource idx_source(const std::string& dir, const std::string& name) {
  DataSource src;
  src.train = load_fashion_mnist(dir, true);
  src.test = load_fashion_mnist(dir, false);
  check(src.train->sample_shape() == src.test->sample_shape(),
        dir + ": train images are " + shape_str(src.train->sample_shape()) + " but test images are " +
            shape_str(src.test->sample_shape()) + "; the files come from different datasets");
  // The two splits must agree on the number of classes.
  const int64_t classes = std::max(src.train->num_outputs(), src.test->num_outputs());
  if (src.train->num_outputs() != classes || src.test->num_outputs() != classes) {
    IdxImageOptions opt;
    opt.num_classes = classes;
    src.train = load_fashion_mnist(dir, true, opt);
    src.test = load_fashion_mnist(dir, false, opt);
  }
  if (classes == 10) {
    src.class_names = fashion_mnist_class_names();
  } else {
    for (int64_t c = 0; c < classes; ++c) src.class_names.push_back(std::to_string(c));
  }
  src.description = name + " (" + dir + ")";
  return src;
}

}  // namespace

DataSource resolve_data(const std::string& spec, const CsvOptions& csv) {
  if (spec == "fashion-mnist") {
    check(has_mnist_files(kFashionMnistDir), std::string("fashion-mnist: the files are not in ") + kFashionMnistDir +
                                                 "; install the Debian package dataset-fashion-mnist or pass a directory");
    return idx_source(kFashionMnistDir, "Fashion-MNIST");
  }
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) {
    check(has_mnist_files(spec), spec + ": directory lacks the four IDX files (train-images-idx3-ubyte.gz, "
                                        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)");
    return idx_source(spec, "IDX images");
  }
  if (has_suffix_ci(spec, ".csv") || has_suffix_ci(spec, ".csv.gz")) {
    CsvTable table = load_csv(spec, csv);
    DataSource src;
    src.train = table.dataset;
    src.class_names = std::move(table.class_names);
    src.feature_names = std::move(table.feature_names);
    src.standardize = csv.standardize;
    src.description = "CSV " + spec + " (label '" + table.label_column + "')";
    return src;
  }
  throw Error("--data '" + spec + "': expected 'fashion-mnist', a directory with MNIST-style IDX files, or a .csv file" +
              (std::filesystem::exists(spec, ec) ? "" : " (no such file or directory)"));
}

PreparedData prepare_splits(const DataSource& source, double val_fraction, uint64_t seed) {
  check(source.train != nullptr, "prepare_splits: the data source has no training data");
  PreparedData out;
  if (source.test) {
    out.train = source.train;
    out.test = source.test;
  } else {
    std::tie(out.train, out.test) = train_val_split(*source.train, val_fraction, seed);
  }
  if (source.standardize) {
    check(out.train->sample_shape().size() == 1, "standardize: needs tabular features {N, F}, got samples of shape " +
                                                     shape_str(out.train->sample_shape()));
    out.standardizer = Standardizer::fit(*out.train, source.feature_names);
    out.train = out.standardizer->apply(*out.train);
    out.test = out.standardizer->apply(*out.test);
  }
  return out;
}

}  // namespace leanai
