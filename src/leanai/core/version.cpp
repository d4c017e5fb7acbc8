#include "leanai/core/version.h"

#ifndef LEANAI_VERSION_STRING
#error "LEANAI_VERSION_STRING is set by CMakeLists.txt from project(VERSION)"
#endif

namespace leanai {

const char* version() { return LEANAI_VERSION_STRING; }

}  // namespace leanai
