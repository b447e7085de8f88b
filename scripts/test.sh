#!/usr/bin/env bash
# Installs the Debian packages, builds qmeter twice (optimized, and with ASan+UBSan), and runs the
# whole test suite in both builds. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS="${QMETER_JOBS:-2}"
# Each step's wall time, so a CI log shows where the minutes go (the suite must stay under 40).
lap_start=$(date +%s)
lap() { echo "qmeter: step '$1' took $(( $(date +%s) - lap_start )) s"; lap_start=$(date +%s); }

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$JOBS"
lap "optimized build"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 600
lap "optimized tests"

# Sanitizer build: the same tests under AddressSanitizer + UndefinedBehaviorSanitizer. Tests that
# measure timing against tight ground truth are labelled `timing` and skipped here, because ASan's
# slowdown changes the timings, not the logic they check (the optimized run above covers them).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQMETER_SANITIZE=ON -DQMETER_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
lap "ASan+UBSan build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$JOBS" --timeout 900 -LE timing
lap "ASan+UBSan tests"

# Hardening (issue #21): every fuzz target for 10 s from its seed corpus (clang + libFuzzer), and
# the concurrent modules' tests under ThreadSanitizer (a small target set; see the script).
./scripts/test_hardening.sh fuzz
lap "fuzz (build + run)"
./scripts/test_hardening.sh tsan
lap "TSan (build + run)"
# Nothing the tests started may outlive them (servers, mock servers, the test Slurm daemons).
./scripts/check-leftovers.sh
echo "qmeter: all tests passed (optimized, ASan+UBSan, fuzz and TSan builds)"
