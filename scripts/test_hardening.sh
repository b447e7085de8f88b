#!/usr/bin/env bash
# The hardening steps of the README test command (issue #21), called by scripts/test.sh:
#   fuzz  builds the libFuzzer targets (build-fuzz: clang, ASan+UBSan, only the fuzz targets and
#         the modules they link) and runs each for QMETER_FUZZ_SECONDS (default 10) from its
#         checked-in corpus; any crash, hang, leak or out-of-memory input fails the step.
#   tsan  builds the concurrent modules' tests under ThreadSanitizer (build-tsan: only those test
#         binaries; the qmeter processes they spawn come from the optimized build) and runs them.
#         Any report fails the step; scripts/tsan.supp holds the suppressions, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${QMETER_JOBS:-2}"
step="${1:?usage: test_hardening.sh fuzz|tsan}"
start=$(date +%s)

case "$step" in
  fuzz)
    CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=None -DQMETER_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j"$JOBS" --target qmeter_fuzzers
    QMETER_FUZZ_JOBS="$JOBS" bench/fuzz/run.sh "${QMETER_FUZZ_SECONDS:-10}" build-fuzz
    ;;
  tsan)
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=None -DQMETER_TSAN=ON -DQMETER_BUILD_BENCH=OFF \
      -DQMETER_EXTERNAL_BIN="$PWD/build/src/cli/qmeter" >/dev/null
    # name:filter of each binary: the streaming client loop, the HTTP server, the serving scheduler
    # (in-process `qmeter serve`), the engine thread pool and the telemetry sessions.
    runs=(
      "tests/net/net_test:*"
      "tests/client/test_client:*"
      "tests/server/test_server:Serve.*:ServeApi.*"
      "tsan_thread_pool:*"
      "tests/telemetry/test_telemetry:*:-EnergyVerb.*"
    )
    targets=()
    for r in "${runs[@]}"; do targets+=("$(basename "${r%%:*}")"); done
    cmake --build build-tsan -j"$JOBS" --target "${targets[@]}"
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp"
    for r in "${runs[@]}"; do
      bin="build-tsan/${r%%:*}"
      filter="${r#*:}"
      echo "+ TSan: $bin --gtest_filter=$filter"
      "$bin" --gtest_filter="$filter" --gtest_brief=1
    done
    ;;
  *)
    echo "test_hardening.sh: unknown step '$step' (fuzz or tsan)" >&2
    exit 2
    ;;
esac
echo "qmeter: hardening step '$step' passed in $(( $(date +%s) - start )) s"
