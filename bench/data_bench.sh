#!/usr/bin/env bash
# Data-efficient training benchmark (see data_bench.py): full data vs random,
# top-value and stratified subsets, dynamic pruning and value-aware
# augmentation, on Fashion-MNIST with cnn-bn, several seeds. About an hour on
# 2 cores with the defaults; EPOCHS and SEEDS make it shorter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TARGET=leanai_cli scripts/build.sh build
exec /usr/bin/python3 bench/data_bench.py
