// One thread pool (OpenMP) for oneDNN and our own loops.
#pragma once

namespace leanai {

// Sets the threads used by every kernel; n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

}  // namespace leanai
