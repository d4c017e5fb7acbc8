#!/usr/bin/env bash
# Configures and builds leanai.
# Usage: scripts/build.sh [build-dir] [extra cmake args...]; TARGET=name builds one target.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C "$dir" ${TARGET:+"$TARGET"}
