// Atomic file replacement: the content goes to a temp file beside the target,
// is flushed to disk, then renamed over the target. Readers see either the old
// file or the complete new one, never a half-written file, even after a crash.
//
//   write_text_atomic("report.json", json.dump(2));
//   write_file_atomic("model.bin", [&](std::FILE* f) { write_bytes(f, p, n, "model.bin"); });
#pragma once
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>

namespace leanai {

// Calls writer(f) on a fresh temp file "<path>.tmp.<pid>.<n>" in path's
// directory, then fsyncs it, renames it over path and fsyncs the directory.
// On any failure the temp file is removed and a previous file at path is left
// untouched: I/O failures throw Error; an exception from writer is rethrown.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& writer);

// write_file_atomic for a whole string (JSON, CSV, reports).
void write_text_atomic(const std::string& path, const std::string& text);

// fwrite that throws Error naming path on a short write (disk full, quota...).
void write_bytes(std::FILE* f, const void* data, size_t size, const std::string& path);

}  // namespace leanai
