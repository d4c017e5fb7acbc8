#!/usr/bin/env bash
# Training benchmark, leanai vs PyTorch 1.13 in one run (see train_bench.py).
# Installs what only the benchmark needs (Debian's PyTorch and the OpenMP
# OpenBLAS, without which Debian's torch runs 40-70x slower), builds leanai.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
need=()
for p in python3-torch python3-numpy libopenblas0-openmp; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}"
fi
TARGET=leanai_cli scripts/build.sh build
exec /usr/bin/python3 bench/train_bench.py
