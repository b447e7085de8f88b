#!/usr/bin/env bash
# Issue 7's benchmark: items per second of `qmeter eval` against `qmeter serve` (stories260K), for
# perplexity (documents of tinystories_val) and multiple choice (ARC-Easy, one request per choice),
# at --concurrency 1 and 8.
#   bench/quality/quality_bench.sh [build/src/cli/qmeter] [shared data folder] [server threads]
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
DATA="${2:-${QMETER_SHARED_DATA:-$(dirname "$0")/../../../shared/data}}"
THREADS="${3:-2}"
MODEL="$DATA/models/stories260K/stories260K.bin"
[ -f "$MODEL" ] || { echo "quality_bench: $MODEL is missing (set QMETER_SHARED_DATA)" >&2; exit 1; }
OUT="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
"$QMETER" serve --model "$MODEL" --port "$PORT" --threads "$THREADS" --max-num-seqs 64 > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
run() {  # name, concurrency, task, limit
  "$QMETER" eval --base-url "http://127.0.0.1:$PORT" --task "$3" --limit "$4" --concurrency "$2" \
    --output-json "$OUT/$1.json" > "$OUT/$1.txt" 2>&1
  local ips secs
  ips=$(grep -o '"items_per_second": [0-9.e+-]*' "$OUT/$1.json" | head -1 | cut -d' ' -f2)
  secs=$(grep -o '"seconds": [0-9.e+-]*' "$OUT/$1.json" | head -1 | cut -d' ' -f2)
  printf "%-24s concurrency %-2s %8.1f items/s  (%s items in %.2f s)\n" "$1" "$2" "$ips" "$4" "$secs"
}
echo "qmeter eval against qmeter serve (stories260K, $THREADS server threads, $(nproc) cores)"
for c in 1 8; do
  run "perplexity-c$c" "$c" "perplexity:$DATA/eval/tinystories_val.txt" 200
  run "mc-arc-c$c" "$c" "mc:$DATA/eval/arc_easy_test.jsonl" 200
done
