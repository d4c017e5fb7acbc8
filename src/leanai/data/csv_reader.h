// Splits CSV text into records of fields: RFC 4180 quoting ("a,b" and ""
// for a quote), \n or \r\n line ends, blank lines skipped.
#pragma once
#include <string>
#include <vector>

namespace leanai {

struct CsvRecord {
  int64_t line;  // 1-based line where the record starts
  std::vector<std::string> fields;
};

// Throws Error (prefixed with name) for a quote that is never closed.
std::vector<CsvRecord> split_csv_records(const std::string& text, const std::string& name, char delimiter);

}  // namespace leanai
