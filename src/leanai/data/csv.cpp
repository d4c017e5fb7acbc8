#include "leanai/data/csv.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>

#include "leanai/core/error.h"
#include "leanai/data/csv_field.h"
#include "leanai/data/csv_reader.h"
#include "leanai/data/gz_file.h"

namespace leanai {

namespace {

// No dataset here has this many classes; a bigger integer label is more
// likely an id or a measurement column picked by mistake.
constexpr int64_t kMaxClassId = 100000;

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

std::string column_desc(const std::vector<std::string>& header, size_t c) {
  return "column " + std::to_string(c + 1) + " '" + header[c] + "'";
}

size_t find_column(const std::vector<std::string>& header, const std::string& wanted, const std::string& name,
                   const std::string& role) {
  const auto it = std::find(header.begin(), header.end(), wanted);
  check(it != header.end(), name + ": no column named '" + wanted + "' for the " + role +
                                "; the columns are: " + join(header));
  check(std::find(it + 1, header.end(), wanted) == header.end(),
        name + ": more than one column is named '" + wanted + "'; rename one in the header row");
  return static_cast<size_t>(it - header.begin());
}

// Class ids: non-negative integers are their own ids; anything else maps the
// distinct strings to ids in sorted order.
Tensor class_targets(const std::vector<std::string>& labels, const std::vector<int64_t>& lines, const std::string& name,
                     const std::string& column, std::vector<std::string>& class_names) {
  const int64_t n = static_cast<int64_t>(labels.size());
  Tensor y = Tensor::empty({n}, DType::i64);
  int64_t* ids = y.data<int64_t>();
  bool all_ids = true;
  int64_t max_id = -1;
  for (int64_t i = 0; i < n && all_ids; ++i) {
    all_ids = parse_int_field(labels[i], ids[i]) && ids[i] >= 0;
    if (all_ids) max_id = std::max(max_id, ids[i]);
  }
  if (all_ids) {
    check(max_id <= kMaxClassId, name + ": label " + std::to_string(max_id) + " in " + column +
                                     " is too large for a class id; use ids 0..K-1, string labels, or a regression task");
    for (int64_t c = 0; c <= max_id; ++c) class_names.push_back(std::to_string(c));
    return y;
  }
  std::map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < n; ++i) {
    const std::string label(trim_field(labels[i]));
    check(!label.empty(), name + ": line " + std::to_string(lines[i]) + ", " + column +
                              ": empty label; every row needs a label");
    id_of.emplace(label, 0);
  }
  for (auto& [label, id] : id_of) {
    id = static_cast<int64_t>(class_names.size());
    class_names.push_back(label);
  }
  for (int64_t i = 0; i < n; ++i) ids[i] = id_of.at(std::string(trim_field(labels[i])));
  return y;
}

}  // namespace

CsvTable parse_csv(const std::string& text, const std::string& name, const CsvOptions& options) {
  const std::vector<CsvRecord> records = split_csv_records(text, name, options.delimiter);
  check(!records.empty(), name + ": empty file; expected a header row naming the columns, then one row per sample");
  std::vector<std::string> header;
  for (const std::string& h : records[0].fields) header.emplace_back(trim_field(h));
  check(records.size() > 1, name + ": has a header but no data rows");

  CsvTable table;
  const size_t label_col = options.label_column.empty() ? header.size() - 1
                                                        : find_column(header, options.label_column, name, "label");
  table.label_column = header[label_col];
  std::vector<bool> is_feature(header.size(), true);
  is_feature[label_col] = false;
  for (const std::string& ignored : options.ignore_columns) {
    const size_t c = find_column(header, ignored, name, "columns to ignore");
    check(c != label_col, name + ": the label column '" + ignored + "' cannot also be ignored");
    is_feature[c] = false;
  }
  std::vector<size_t> feature_cols;
  for (size_t c = 0; c < header.size(); ++c)
    if (is_feature[c]) {
      feature_cols.push_back(c);
      table.feature_names.push_back(header[c]);
    }
  check(!feature_cols.empty(), name + ": no feature columns left besides the label '" + table.label_column + "'");

  const int64_t n = static_cast<int64_t>(records.size()) - 1;
  const int64_t f = static_cast<int64_t>(feature_cols.size());
  Tensor x = Tensor::empty({n, f}, DType::f32);
  float* xd = x.data<float>();
  std::vector<std::string> labels(n);
  std::vector<int64_t> lines(n);
  for (int64_t r = 0; r < n; ++r) {
    const CsvRecord& rec = records[r + 1];
    check(rec.fields.size() == header.size(), name + ": line " + std::to_string(rec.line) + " has " +
                                                  std::to_string(rec.fields.size()) + " fields but the header has " +
                                                  std::to_string(header.size()) + "; every row needs one value per column");
    for (int64_t j = 0; j < f; ++j) {
      const std::string& value = rec.fields[feature_cols[j]];
      check(parse_float_field(value, xd[r * f + j]),
            name + ": line " + std::to_string(rec.line) + ", " + column_desc(header, feature_cols[j]) + ": '" + value +
                "' is not a finite number; feature columns must be numeric (or ignore this column)");
    }
    labels[r] = rec.fields[label_col];
    lines[r] = rec.line;
  }

  Tensor y;
  int64_t num_outputs = 1;
  if (options.task == Task::classification) {
    y = class_targets(labels, lines, name, column_desc(header, label_col), table.class_names);
    num_outputs = static_cast<int64_t>(table.class_names.size());
  } else {
    y = Tensor::empty({n, 1}, DType::f32);
    for (int64_t r = 0; r < n; ++r)
      check(parse_float_field(labels[r], y.data<float>()[r]),
            name + ": line " + std::to_string(lines[r]) + ", " + column_desc(header, label_col) + ": '" + labels[r] +
                "' is not a finite number; regression targets must be numeric");
  }
  table.dataset = std::make_shared<InMemoryDataset>(std::move(x), std::move(y), options.task, num_outputs);
  return table;
}

CsvTable load_csv(const std::string& path, const CsvOptions& options) {
  return parse_csv(read_whole_file(path), path, options);
}

}  // namespace leanai
