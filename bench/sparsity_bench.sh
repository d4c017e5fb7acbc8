#!/usr/bin/env bash
# Dynamic sparsity benchmark (see sparsity_bench.py): dense vs 50% vs 70% gated
# neurons on Fashion-MNIST (mlp, cnn-bn) and UCI Letter Recognition, and MoE
# vs dense at equal active FLOPs. Installs what only the benchmark needs
# (r-cran-mlbench, which ships the Letter data set, and R to export it as CSV).
# About 1.5 hours on 2 cores with the defaults; SEEDS=1 ROUNDS=3 for a quick run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! dpkg-query -W -f='${Status}' r-cran-mlbench 2>/dev/null | grep -q "install ok installed"; then
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq r-cran-mlbench
fi
out="${OUT:-bench/out/sparsity}"
mkdir -p "$out"
if [ ! -s "$out/letter.csv" ]; then
  Rscript -e 'suppressMessages(library(mlbench)); data(LetterRecognition);
              write.csv(LetterRecognition, commandArgs(TRUE)[1], row.names = FALSE, quote = FALSE)' "$out/letter.csv.tmp"
  mv "$out/letter.csv.tmp" "$out/letter.csv"
fi
TARGET=leanai_cli scripts/build.sh build
# Splits and kernels are chosen by timing on this run's build, not read from
# choices an earlier build cached in ~/.cache.
LEANAI_CACHE_DIR="$(mktemp -d)"
export LEANAI_CACHE_DIR
trap 'rm -rf "$LEANAI_CACHE_DIR"' EXIT
/usr/bin/python3 bench/sparsity_bench.py "$@"
