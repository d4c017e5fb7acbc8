#!/usr/bin/env bash
# Inference benchmark, leanai vs ONNX Runtime 1.30 vs PyTorch 1.13 in one run
# (see infer_bench.py). Installs what only the benchmark needs: Debian's
# PyTorch and ONNX with the OpenMP OpenBLAS, Node.js, and onnxruntime-node from
# npm (its CPU build; ONNXRUNTIME_NODE_INSTALL=skip avoids the GPU download).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bench/install_anchors.sh
TARGET=leanai_cli scripts/build.sh build
exec /usr/bin/python3 bench/infer_bench.py
