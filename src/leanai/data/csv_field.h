// Parsing one CSV field as a number: surrounding blanks and a leading '+' are
// allowed, anything else left over is not (so "1.5x" or "" fail instead of
// reading as 1.5 or 0).
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace leanai {

inline std::string_view trim_field(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// False unless the whole field is one finite float.
inline bool parse_float_field(std::string_view s, float& out) {
  s = trim_field(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

// False unless the whole field is one integer that fits int64_t.
inline bool parse_int_field(std::string_view s, int64_t& out) {
  s = trim_field(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace leanai
