#!/usr/bin/env bash
# Issues 7 and 18: items per second of `qmeter eval` against `qmeter serve` (stories260K), for
# perplexity (documents of tinystories_val), multiple choice (ARC-Easy, one request per choice),
# winogrande (2 requests per item), lambada (1 request, top-1 alternatives) and mmlu (5-shot, 4
# requests per question, --limit per subject), at --max-concurrency 1 and 8. The scores on this model
# are near chance; the figures are about speed.
# A request longer than the server's context (mmlu's 5-shot prompts on a 512-token model) is cut
# before it is sent: one /tokenize and one scoring request (no refusal and retry).
#   bench/quality/quality_bench.sh [build/src/cli/qmeter] [shared data folder] [server threads] [tasks]
# tasks: a space-separated subset of "perplexity mc-arc winogrande lambada mmlu" (default: all).
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
DATA="${2:-${QMETER_SHARED_DATA:-$(dirname "$0")/../../../shared/data}}"
THREADS="${3:-2}"
TASKS=" ${4:-perplexity mc-arc winogrande lambada mmlu} "
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
  [[ "$TASKS" == *" ${1%-c*} "* ]] || return 0
  "$QMETER" eval --base-url "http://127.0.0.1:$PORT" --task "$3" --limit "$4" --max-concurrency "$2" \
    --output-json "$OUT/$1.json" > "$OUT/$1.txt" 2>&1
  local ips secs
  ips=$(grep -o '"items_per_second": [0-9.e+-]*' "$OUT/$1.json" | head -1 | cut -d' ' -f2)
  secs=$(grep -o '"seconds": [0-9.e+-]*' "$OUT/$1.json" | head -1 | cut -d' ' -f2)
  local n
  n=$(grep -o '"n": [0-9]*' "$OUT/$1.json" | head -1 | cut -d' ' -f2)
  printf "%-24s concurrency %-2s %8.1f items/s  (%s items in %.2f s)\n" "$1" "$2" "$ips" "$n" "$secs"
}
echo "qmeter eval against qmeter serve (stories260K, $THREADS server threads, $(nproc) cores)"
for c in 1 8; do
  run "perplexity-c$c" "$c" "perplexity:$DATA/eval/tinystories_val.txt" 200
  run "mc-arc-c$c" "$c" "mc:$DATA/eval/arc_easy_test.jsonl" 200
  run "winogrande-c$c" "$c" "winogrande:$DATA/eval/winogrande_dev.jsonl" 200
  run "lambada-c$c" "$c" "lambada:$DATA/eval/lambada_openai_test.jsonl" 200
  run "mmlu-c$c" "$c" "mmlu:$DATA/eval/mmlu_test.jsonl" 2  # 2 per subject: 114 questions
done
