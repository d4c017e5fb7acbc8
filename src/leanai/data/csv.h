// CSV tables as datasets: a header row naming the columns, one sample per
// row, numeric feature columns and one label column chosen by name.
//
//   CsvOptions opt{.label_column = "species"};
//   CsvTable t = load_csv("iris.csv", opt);   // t.dataset, t.class_names
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "leanai/data/dataset.h"

namespace leanai {

struct CsvOptions {
  std::string label_column;  // empty: the last column
  Task task = Task::classification;
  // Standardize features with statistics of the training split only. load_csv
  // itself does not (it has no split yet): prepare_splits in data_source.h does.
  bool standardize = true;
  std::vector<std::string> ignore_columns;  // e.g. an id or date column
  char delimiter = ',';
};

struct CsvTable {
  std::shared_ptr<InMemoryDataset> dataset;  // features f32 {N, F}
  std::vector<std::string> feature_names;    // F names, in column order
  // Classification: the name of each class id. String labels get ids in
  // sorted order; non-negative integer labels are their own ids.
  std::vector<std::string> class_names;
  std::string label_column;
};

// Reads a CSV file (plain or gzip). Fields may be double-quoted. Throws Error
// for an empty file, a missing label column (listing the columns there are),
// a row with the wrong number of fields, or a non-numeric value (with line
// and column).
CsvTable load_csv(const std::string& path, const CsvOptions& options = {});

// The same, from text in memory; `name` is used in error messages.
CsvTable parse_csv(const std::string& text, const std::string& name, const CsvOptions& options = {});

}  // namespace leanai
