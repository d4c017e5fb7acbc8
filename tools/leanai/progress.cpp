#include "progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace leanai::cli {

Progress::Mode Progress::detect(bool quiet) {
  if (quiet) return Mode::silent;
  return isatty(STDERR_FILENO) ? Mode::bar : Mode::lines;
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

void Progress::update(const std::string& label, int64_t done, int64_t total, const std::string& stats, double elapsed_s) {
  if (mode_ == Mode::silent) return;
  const double frac = total > 0 ? static_cast<double>(done) / total : 1.0;
  const double eta = frac > 0 ? elapsed_s * (1.0 - frac) / frac : 0.0;
  if (mode_ == Mode::bar) {
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(frac * kWidth);
    std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s ETA %s\033[K", label.c_str(), bar.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), stats.c_str(), format_duration(eta).c_str());
    std::fflush(stderr);
    bar_open_ = true;
    return;
  }
  // Piped: one line at most every 10 seconds, and always at the end.
  const auto now = std::chrono::steady_clock::now();
  if (done != total && now - last_line_ < std::chrono::seconds(10)) return;
  last_line_ = now;
  std::fprintf(stderr, "%s %lld/%lld %s ETA %s\n", label.c_str(), static_cast<long long>(done),
               static_cast<long long>(total), stats.c_str(), format_duration(eta).c_str());
}

void Progress::finish() {
  if (bar_open_) std::fputc('\n', stderr);
  bar_open_ = false;
}

}  // namespace leanai::cli
