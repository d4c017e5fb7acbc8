// The leanai version, from the CMake project version (one source of truth).
#pragma once

namespace leanai {

const char* version();  // e.g. "0.1.0"

}  // namespace leanai
