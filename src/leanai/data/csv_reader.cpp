#include "leanai/data/csv_reader.h"

#include "leanai/core/error.h"

namespace leanai {

std::vector<CsvRecord> split_csv_records(const std::string& text, const std::string& name, char delimiter) {
  std::vector<CsvRecord> records;
  size_t i = 0;
  // A UTF-8 byte order mark would otherwise stick to the first column name.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int64_t line = 1;
  const size_t n = text.size();
  while (i < n) {
    CsvRecord rec{line, {}};
    std::string field;
    bool record_done = false;
    while (!record_done) {
      field.clear();
      if (i < n && text[i] == '"') {
        const int64_t quote_line = line;
        ++i;
        for (;;) {
          check(i < n, name + ": line " + std::to_string(quote_line) + ": a quoted field is never closed; add the closing \"");
          if (text[i] == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
      }
      // Unquoted text (or anything after a closing quote) up to the delimiter.
      while (i < n && text[i] != delimiter && text[i] != '\n') field += text[i++];
      if (!field.empty() && field.back() == '\r' && (i >= n || text[i] == '\n')) field.pop_back();
      rec.fields.push_back(field);
      if (i < n && text[i] == delimiter) {
        ++i;
      } else {
        record_done = true;
        if (i < n) {  // the '\n'
          ++i;
          ++line;
        }
      }
    }
    const bool blank = rec.fields.size() == 1 && rec.fields[0].find_first_not_of(" \t") == std::string::npos;
    if (!blank) records.push_back(std::move(rec));
  }
  return records;
}

}  // namespace leanai
