// What a user's "--data" string names, loaded:
//   "fashion-mnist"          Fashion-MNIST from /usr/share/datasets/fashion-mnist
//                            (Debian package dataset-fashion-mnist)
//   a directory              holding the four MNIST-style IDX files
//                            (train-images-idx3-ubyte.gz, ...)
//   a .csv or .csv.gz file   a table (see csv.h); it has no test split
//
//   DataSource src = resolve_data(flag, csv_options);
//   PreparedData d = prepare_splits(src, 0.2, seed);   // d.train, d.test, d.standardizer
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "leanai/data/csv.h"
#include "leanai/data/dataset.h"
#include "leanai/data/standardizer.h"

namespace leanai {

struct DataSource {
  std::shared_ptr<InMemoryDataset> train;
  std::shared_ptr<InMemoryDataset> test;   // null when the source has no test split (CSV)
  std::vector<std::string> class_names;    // empty for regression
  std::vector<std::string> feature_names;  // CSV columns; empty for images
  bool standardize = false;                // fit a Standardizer on the training split (CSV option)
  std::string description;                 // for logs: "Fashion-MNIST (/usr/share/...)"
};

// Loads what spec names (see above). Throws Error naming the accepted forms
// when spec is none of them.
DataSource resolve_data(const std::string& spec, const CsvOptions& csv = {});

struct PreparedData {
  std::shared_ptr<InMemoryDataset> train;
  std::shared_ptr<InMemoryDataset> test;  // the source's test split, or the held-out part of train
  std::optional<Standardizer> standardizer;  // set when the source asked for one; save it with the model
};

// Splits off val_fraction of train as the test part when the source has no
// test split (stratified, seeded), then fits the standardizer on the training
// part only and applies it to both.
PreparedData prepare_splits(const DataSource& source, double val_fraction, uint64_t seed);

}  // namespace leanai
