// leanai::Error: the one exception type thrown at every boundary (files, CLI,
// specs, shapes). Its message says what was wrong and what to do about it.
#pragma once
#include <stdexcept>
#include <string>

namespace leanai {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error(message) when cond is false; for checks on user-supplied input.
inline void check(bool cond, const std::string& message) {
  if (!cond) throw Error(message);
}
// The same for a fixed message, which then costs no string when the check
// passes (Plan::run checks on every call and allocates nothing).
inline void check(bool cond, const char* message) {
  if (!cond) throw Error(message);
}

}  // namespace leanai
