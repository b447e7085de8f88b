#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_*.cpp, built by -DQMETER_FUZZ=ON) for SECONDS each from its
# checked-in seed corpus, and prints per target the executions, the CPU-seconds fuzzed and the
# findings (crash / timeout / out-of-memory / leak inputs libFuzzer saved). Exits 1 when any
# target found something; the inputs stay in the output folder it names.
#
#   bench/fuzz/run.sh [SECONDS=60] [BUILD_DIR=build-fuzz] [TARGET...]
#   QMETER_FUZZ_JOBS=2 runs two targets at a time (default 1; the machine is shared).
#   QMETER_FUZZ_OUT=dir keeps the grown corpora and findings there (default: a fresh temp dir).
#
# The checked-in corpus is only read: new coverage goes to the output folder, so a long run can
# be reviewed and its interesting inputs minimized (-merge=1) into fuzz/corpus/ by hand.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-60}"
BUILD="${2:-build-fuzz}"
shift $(( $# > 2 ? 2 : $# ))
JOBS="${QMETER_FUZZ_JOBS:-1}"
OUT="${QMETER_FUZZ_OUT:-$(mktemp -d /tmp/qmeter-fuzz.XXXXXX)}"
mkdir -p "$OUT"

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for src in fuzz/fuzz_*.cpp; do t="$(basename "$src" .cpp)"; targets+=("${t#fuzz_}"); done
fi

run_one() {
  local t="$1" bin="$BUILD/fuzz/fuzz_$1" dir="$OUT/$1"
  mkdir -p "$dir/corpus" "$dir/findings"
  local dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  # -timeout: one input running longer is a hang; -rss_limit_mb / -malloc_limit_mb: a header that
  # makes a loader allocate gigabytes is a finding (the parsers must check sizes against the file).
  /usr/bin/time -f "%U %S" -o "$dir/cpu" \
    "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=1024 \
      -artifact_prefix="$dir/findings/" "${dict[@]}" "$dir/corpus" "fuzz/corpus/$t" >"$dir/log" 2>&1
  echo $? >"$dir/rc"
}

# LeakSanitizer suppressions, each with its reason (fuzz/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export -f run_one
export BUILD OUT SECONDS_EACH
missing=0
for t in "${targets[@]}"; do
  [ -x "$BUILD/fuzz/fuzz_$t" ] || { echo "fuzz: $BUILD/fuzz/fuzz_$t is not built (cmake --build $BUILD --target qmeter_fuzzers)"; missing=1; }
done
[ "$missing" -eq 0 ] || exit 2
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'

status=0
printf '%-18s %12s %10s %8s  %s\n' target execs cpu_s findings result
for t in "${targets[@]}"; do
  dir="$OUT/$t"
  execs="$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$')"
  cpu="$(tail -1 "$dir/cpu" | awk '{printf "%.1f", $1 + $2}' 2>/dev/null)"
  findings="$(find "$dir/findings" -type f | wc -l)"
  rc="$(cat "$dir/rc")"
  result=ok
  if [ "$findings" -gt 0 ] || [ "$rc" -ne 0 ]; then
    result="FOUND (rc $rc): $(find "$dir/findings" -type f | head -3 | tr '\n' ' ') log: $dir/log"
    status=1
  fi
  printf '%-18s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${cpu:-?}" "$findings" "$result"
done
# A finding's reason and input go to the output as well, so a CI log alone says what to fix.
for t in "${targets[@]}"; do
  dir="$OUT/$t"
  for f in $(find "$dir/findings" -type f | head -3); do
    echo "--- $t: $(basename "$f")"
    grep -m8 -E 'escaped the parser|ERROR|runtime error|SUMMARY|#[0-9]+ 0x.* in qmeter' "$dir/log" | cut -c1-300
    echo "--- input (first 2 KiB, cat -v):"
    head -c 2048 "$f" | cat -v
    echo
  done
done
echo "fuzz: outputs in $OUT"
exit "$status"
