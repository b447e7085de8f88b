#!/usr/bin/env bash
# Installs the Debian packages, builds qmeter, and runs the quickstart study on the embedded
# default. This is the README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS="${QMETER_JOBS:-2}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQMETER_BUILD_TESTS=OFF -DQMETER_BUILD_BENCH=OFF >/dev/null
cmake --build build -j"$JOBS" --target qmeter
./scripts/quickstart-run.sh build/src/cli/qmeter
