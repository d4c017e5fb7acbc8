#!/usr/bin/env bash
# Quantization benchmark, leanai vs PyTorch 1.13 vs ONNX Runtime 1.30 in one
# run (see quant_bench.py; --smoke checks the harness quickly, --report prints
# the recorded table). Installs what only the benchmark needs, as
# infer_bench.sh does: Debian's PyTorch and ONNX with the OpenMP OpenBLAS,
# Node.js, and onnxruntime-node from npm (ONNXRUNTIME_NODE_INSTALL=skip: the
# CPU build it ships, no GPU download).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --report "* ]]; then
  scripts/setup.sh
  bench/install_anchors.sh
  TARGET=leanai_cli scripts/build.sh build
fi
exec /usr/bin/python3 bench/quant_bench.py "$@"
