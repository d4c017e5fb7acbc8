#!/usr/bin/env bash
# The main job, from a fresh clone: install dependencies, build, train the
# reference CNN on Fashion-MNIST, evaluate it on the test split, save it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TARGET=leanai_cli scripts/build.sh build   # the CLI only; the tests build with scripts/test.sh
./build/leanai train --model cnn --data fashion-mnist --epochs "${EPOCHS:-2}" --out model.leanai
./build/leanai eval model.leanai
./build/leanai info model.leanai
