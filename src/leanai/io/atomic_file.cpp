#include "leanai/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "leanai/core/error.h"

namespace leanai {
namespace {

std::string errno_text(int err) { return std::strerror(err != 0 ? err : EIO); }

// A per-process counter keeps temp names unique when threads save the same path.
std::string temp_path_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

std::string directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Owns the open temp file until it is renamed into place; on early exit
// (error or exception) closes and deletes it.
class TempFile {
 public:
  TempFile(std::string target, std::string temp) : target_(std::move(target)), temp_(std::move(temp)) {}
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  std::FILE* open() {
    int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
      int err = errno;
      // Nothing was created, so there is nothing to clean up.
      committed_ = true;
      throw Error("cannot write '" + target_ + "': creating temp file '" + temp_ + "' failed: " + errno_text(err) +
                  "; check that the directory exists and is writable");
    }
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      int err = errno;
      ::close(fd);
      fail("opening", err);
    }
    return file_;
  }

  // Everything the writer wrote must be on disk before the rename, or a crash
  // could leave a renamed but empty file.
  void flush_and_close() {
    if (std::ferror(file_)) fail("writing", errno);
    if (std::fflush(file_) != 0) fail("writing", errno);
    if (::fsync(::fileno(file_)) != 0) fail("syncing", errno);
    std::FILE* f = file_;
    file_ = nullptr;
    if (std::fclose(f) != 0) fail("closing", errno);
  }

  void rename_over_target() {
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      int err = errno;
      throw Error("cannot write '" + target_ + "': replacing it with the finished temp file failed: " +
                  errno_text(err) + "; check that the path is not a directory and is writable");
    }
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const char* step, int err) {
    throw Error("cannot write '" + target_ + "': " + step + " the temp file failed: " + errno_text(err) +
                "; check free disk space and permissions");
  }

  std::string target_;
  std::string temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Makes the rename itself durable. Best effort: the new file is already in
// place, and some filesystems cannot fsync a directory.
void sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer) {
  check(!path.empty(), "cannot write a file with an empty path; give an output path");
  TempFile temp(path, temp_path_for(path));
  std::FILE* f = temp.open();
  errno = 0;
  writer(f);
  temp.flush_and_close();
  temp.rename_over_target();
  sync_directory(directory_of(path));
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](std::FILE* f) { write_bytes(f, text.data(), text.size(), path); });
}

void write_bytes(std::FILE* f, const void* data, size_t size, const std::string& path) {
  if (size == 0) return;
  if (std::fwrite(data, 1, size, f) != size) {
    int err = errno;
    throw Error("cannot write '" + path + "': writing " + std::to_string(size) + " bytes failed: " + errno_text(err) +
                "; check free disk space and permissions");
  }
}

}  // namespace leanai
