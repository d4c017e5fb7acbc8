#include "leanai/data/score_csv.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <utility>
#include <vector>

#include "leanai/core/error.h"
#include "leanai/data/csv_field.h"
#include "leanai/data/csv_reader.h"
#include "leanai/data/gz_file.h"
#include "leanai/io/atomic_file.h"

namespace leanai {

namespace {

constexpr const char* kScoresHeader = "index,label,entropy,el2n,grad_norm,forgetting,value";
constexpr const char* kSelectionHeader = "index,label,value,band";
constexpr size_t kScoreColumns = 7;

// The float columns in file order, with their names.
using FloatColumn = std::pair<const char*, std::vector<float> SampleScores::*>;
constexpr std::array<FloatColumn, 5> kFloatColumns = {{{"entropy", &SampleScores::entropy},
                                                      {"el2n", &SampleScores::el2n},
                                                      {"grad_norm", &SampleScores::grad_norm},
                                                      {"forgetting", &SampleScores::forgetting},
                                                      {"value", &SampleScores::value}}};

// %.9g: 9 significant digits are enough for any float to read back bit-equal.
void append_float(std::string& out, float x) {
  char buf[32];
  const int len = std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(x));
  out.append(buf, static_cast<size_t>(len));
}

std::string joined(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += trim_field(fields[i]);
  }
  return out;
}

}  // namespace

void write_scores_csv(const std::string& path, const SampleScores& s) {
  const int64_t n = s.size();
  for (const auto& [name, member] : kFloatColumns) {
    const std::vector<float>& col = s.*member;
    check(static_cast<int64_t>(col.size()) == n,
          fmt::format("{}: cannot write scores: column {} has {} rows but label has {}; fill every column for "
                      "every sample",
                      path, name, col.size(), n));
    for (int64_t i = 0; i < n; ++i)
      check(std::isfinite(col[i]), fmt::format("{}: cannot write scores: {} of sample {} is {}; scores must be finite",
                                               path, name, i, col[i]));
  }
  for (int64_t i = 0; i < n; ++i)
    check(s.label[i] >= 0, fmt::format("{}: cannot write scores: the label of sample {} is {}; set every label",
                                       path, i, s.label[i]));

  std::string text = std::string(kScoresHeader) + "\n";
  text.reserve(text.size() + static_cast<size_t>(n) * 80);
  for (int64_t i = 0; i < n; ++i) {
    fmt::format_to(std::back_inserter(text), "{},{}", i, s.label[i]);
    for (const auto& [name, member] : kFloatColumns) {
      text += ',';
      append_float(text, (s.*member)[i]);
    }
    text += '\n';
  }
  write_text_atomic(path, text);
}

SampleScores read_scores_csv(const std::string& path, int64_t expected_size) {
  const std::vector<CsvRecord> records = split_csv_records(read_whole_file(path), path, ',');
  check(!records.empty(), fmt::format("{}: empty file; expected a scores CSV with the header {}", path, kScoresHeader));
  const std::string header = joined(records[0].fields);
  check(header == kScoresHeader,
        fmt::format("{}: line {}: the header is '{}' but a scores file starts with '{}'; pass the scores CSV written "
                    "by the valuation step",
                    path, records[0].line, header, kScoresHeader));
  check(records.size() > 1, fmt::format("{}: no sample rows after the header; recompute the scores", path));

  SampleScores s;
  const int64_t n = static_cast<int64_t>(records.size()) - 1;
  s.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    const CsvRecord& rec = records[r + 1];
    const std::string where = fmt::format("{}: line {}", path, rec.line);
    check(rec.fields.size() == kScoreColumns,
          fmt::format("{}: {} fields, expected {} ({}); the file is cut short or damaged, recompute the scores", where,
                      rec.fields.size(), kScoreColumns, kScoresHeader));
    int64_t index = -1;
    check(parse_int_field(rec.fields[0], index) && index == r,
          fmt::format("{}: index '{}', expected {}; rows must list the samples 0..n-1 in order, as written", where,
                      rec.fields[0], r));
    check(parse_int_field(rec.fields[1], s.label[r]) && s.label[r] >= 0,
          fmt::format("{}: label '{}' is not a class id (an integer >= 0); fix the row or recompute the scores", where,
                      rec.fields[1]));
    size_t c = 2;
    for (const auto& [name, member] : kFloatColumns) {
      check(parse_float_field(rec.fields[c], (s.*member)[r]),
            fmt::format("{}: {} '{}' is not a finite number; fix the row or recompute the scores", where, name,
                        rec.fields[c]));
      ++c;
    }
  }
  check(expected_size < 0 || n == expected_size,
        fmt::format("{}: scores for {} samples, but the data set has {}; scores were computed for a different data "
                    "set, recompute them for this one",
                    path, n, expected_size));
  return s;
}

void write_selection_csv(const std::string& path, const Selection& sel, const SampleScores& s) {
  const int64_t n = s.size();
  check(sel.band.size() == sel.indices.size(),
        fmt::format("{}: cannot write the selection: {} indices but {} bands", path, sel.indices.size(),
                    sel.band.size()));
  check(static_cast<int64_t>(s.value.size()) == n,
        fmt::format("{}: cannot write the selection: {} values but {} labels in the scores", path, s.value.size(), n));
  std::string text = std::string(kSelectionHeader) + "\n";
  text.reserve(text.size() + sel.indices.size() * 32);
  for (size_t k = 0; k < sel.indices.size(); ++k) {
    const int64_t i = sel.indices[k];
    check(i >= 0 && i < n, fmt::format("{}: cannot write the selection: index {} is outside the {} scored samples; "
                                       "select from these scores",
                                       path, i, n));
    fmt::format_to(std::back_inserter(text), "{},{},", i, s.label[i]);
    append_float(text, s.value[i]);
    fmt::format_to(std::back_inserter(text), ",{}\n", sel.band[k]);
  }
  write_text_atomic(path, text);
}

}  // namespace leanai
