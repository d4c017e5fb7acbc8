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
  need=()
  for p in python3-torch python3-onnx python3-numpy libopenblas0-openmp; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
  if [ ${#need[@]} -gt 0 ]; then
    sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}"
  fi
  if [ ! -d bench/out/ort/node_modules/onnxruntime-node ]; then
    mkdir -p bench/out/ort
    (cd bench/out/ort && npm init -y >/dev/null && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node@1.30)
  fi
  TARGET=leanai_cli scripts/build.sh build
fi
exec /usr/bin/python3 bench/quant_bench.py "$@"
