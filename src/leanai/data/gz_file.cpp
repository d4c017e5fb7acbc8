#include "leanai/data/gz_file.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

#include "leanai/core/error.h"

namespace leanai {

namespace {

gzFile as_gz(void* f) { return static_cast<gzFile>(f); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

GzReader::GzReader(const std::string& path) : path_(path) {
  std::error_code ec;
  check(std::filesystem::exists(path, ec), path + ": no such file; check the path");
  check(!std::filesystem::is_directory(path, ec), path + ": is a directory, expected a file");
  errno = 0;
  file_ = gzopen(path.c_str(), "rb");
  check(file_ != nullptr, path + ": cannot open: " + (errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(as_gz(file_), 1 << 17);  // bigger reads than the 8 KiB default
}

GzReader::~GzReader() {
  if (file_) gzclose(as_gz(file_));
}

size_t GzReader::read(void* dst, size_t n) {
  size_t done = 0;
  char* out = static_cast<char*>(dst);
  while (done < n) {
    // gzread takes an unsigned int length: read in chunks of at most 1 GiB.
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 30));
    const int got = gzread(as_gz(file_), out + done, chunk);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(as_gz(file_), &errnum);
      throw Error(path_ + ": corrupt gzip data (" + (msg ? msg : "unknown zlib error") + "); re-download the file");
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

bool GzReader::stream_cut_short() const {
  int errnum = Z_OK;
  gzerror(as_gz(file_), &errnum);
  return errnum == Z_BUF_ERROR;
}

std::string read_whole_file(const std::string& path) {
  GzReader in(path);
  std::string text;
  size_t filled = 0;
  for (;;) {
    text.resize(std::max<size_t>(filled * 2, size_t{1} << 16));
    const size_t got = in.read(text.data() + filled, text.size() - filled);
    filled += got;
    if (filled < text.size()) break;
  }
  text.resize(filled);
  return text;
}

GzWriter::GzWriter(const std::string& path) : path_(path) {
  // "T" asks zlib for a plain, uncompressed file.
  errno = 0;
  file_ = gzopen(path.c_str(), ends_with(path, ".gz") ? "wb6" : "wbT");
  check(file_ != nullptr, path + ": cannot create: " + (errno ? std::strerror(errno) : "out of memory"));
}

GzWriter::~GzWriter() {
  if (file_) gzclose(as_gz(file_));
}

void GzWriter::write(const void* src, size_t n) {
  const char* in = static_cast<const char*>(src);
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, size_t{1} << 30));
    check(gzwrite(as_gz(file_), in, chunk) == static_cast<int>(chunk), path_ + ": write failed; check free disk space");
    in += chunk;
    n -= chunk;
  }
}

void GzWriter::close() {
  if (!file_) return;
  const int rc = gzclose(as_gz(file_));
  file_ = nullptr;
  check(rc == Z_OK, path_ + ": could not finish writing; check free disk space");
}

}  // namespace leanai
