#!/usr/bin/env bash
# What only the benchmarks need, shared by infer_bench.sh and quant_bench.sh:
# Debian's PyTorch and ONNX with the OpenMP OpenBLAS (without it torch runs on
# the reference BLAS, 40-70x slower), Node.js, and onnxruntime-node from npm
# (ONNXRUNTIME_NODE_INSTALL=skip: the CPU build it ships, no GPU download).
set -euo pipefail
cd "$(dirname "$0")/.."
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
