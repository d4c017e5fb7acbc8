#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite through CTest.
# With SANITIZE=1 it builds and tests under AddressSanitizer + UBSan instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  scripts/build.sh "$dir" -DLEANAI_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEANAI_WERROR=ON
else
  dir=build
  scripts/build.sh "$dir" -DLEANAI_WERROR=ON
fi
# Passive waiting: the test machine may have fewer free cores than threads.
export OMP_WAIT_POLICY=passive
ctest --test-dir "$dir" --output-on-failure -j2
