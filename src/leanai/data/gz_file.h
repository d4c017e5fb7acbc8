// GzReader / GzWriter: read a file that may or may not be gzip-compressed
// (zlib's gzread passes plain files through untouched), and write one,
// compressed when the name ends in ".gz". Errors name the file.
#pragma once
#include <cstddef>
#include <string>

namespace leanai {

class GzReader {
 public:
  // Throws Error when the file is missing, a directory, or unreadable.
  explicit GzReader(const std::string& path);
  ~GzReader();
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. Throws Error on
  // corrupt gzip data.
  size_t read(void* dst, size_t n);
  // True when the gzip stream ended early (a cut-off download), after a short read.
  bool stream_cut_short() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* file_ = nullptr;  // gzFile; void* keeps zlib.h out of this header
};

// The whole (decompressed) content of a file.
std::string read_whole_file(const std::string& path);

class GzWriter {
 public:
  explicit GzWriter(const std::string& path);  // gzip when path ends in ".gz"
  ~GzWriter();
  GzWriter(const GzWriter&) = delete;
  GzWriter& operator=(const GzWriter&) = delete;
  void write(const void* src, size_t n);
  void close();  // flushes; throws Error if the data could not be written

 private:
  std::string path_;
  void* file_ = nullptr;
};

}  // namespace leanai
