// expect_error: runs fn and expects a leanai::Error whose one-line message
// holds every part (a user sees that line, so it must say what and why).
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "leanai/core/error.h"

namespace leanai::test_support {

inline void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const leanai::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected leanai::Error, got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected leanai::Error, nothing was thrown";
}

}  // namespace leanai::test_support
