// One thread pool (OpenMP) for oneDNN and our own loops.
#pragma once

namespace leanai {

// Sets the threads used by every kernel; n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

// Treat denormal floats as zero on every pool thread (FTZ/DAZ). Training
// gradients drift into denormals, and arithmetic on them is up to 100x slower;
// measured here: the reference CNN trains 7x faster with this on, to the same
// loss. Called by every Executor; cheap after the first call per thread count.
void flush_denormals();

}  // namespace leanai
