// Progress for long work: a redrawn bar with loss, accuracy, samples/s and ETA
// on a terminal; a plain line every few seconds when output is piped; nothing
// in --json mode (results go to stdout as JSON lines instead).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace leanai::cli {

class Progress {
 public:
  enum class Mode { bar, lines, silent };
  // Picks bar when stderr is a terminal, lines otherwise; silent when quiet.
  static Mode detect(bool quiet);
  explicit Progress(Mode mode) : mode_(mode) {}

  void update(const std::string& label, int64_t done, int64_t total, const std::string& stats, double elapsed_s);
  // Ends the current bar line.
  void finish();

 private:
  Mode mode_;
  std::chrono::steady_clock::time_point last_line_{};
  bool bar_open_ = false;
};

std::string format_duration(double seconds);  // "1:02:03" or "2:03"

}  // namespace leanai::cli
