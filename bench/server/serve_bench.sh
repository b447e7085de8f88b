#!/usr/bin/env bash
# Issue 4's benchmark: `qmeter bench serve` against `qmeter serve` on a synthetic LLaMA-1B shape
# (BF16). Prints the batched-decode speedup (output tokens/s with 16 concurrent streams over 1
# stream, closed loop), then output tokens/s at Poisson request rates from low to past saturation
# (as fractions of the request rate the 16-stream run sustained, so the sweep fits the machine).
# The 16-stream run sends 16 prompts at once, so after one batched prefill every step decodes 16
# sequences; the TPOT ratio (16 x TPOT at 1 stream / TPOT at 16) isolates the decode step itself.
#   [RATE_FRACTIONS="0.25 0.5 1"] bench/server/serve_bench.sh [build/src/cli/qmeter] [model spec] [threads]
#       [prompts per rate] [output len]
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
MODEL="${2:-synthetic:llama-1b:bf16}"
THREADS="${3:-2}"
PROMPTS="${4:-12}"
OUTPUT_LEN="${5:-64}"
# The random dataset sizes prompts in the client's idea of a token; the synthetic model's
# tokenizer splits that text about 7x finer, so 4 requested tokens are ~30 real ones (the server's
# own count is printed as "prompt").
INPUT_LEN="${INPUT_LEN:-4}"
OUT="$(mktemp -d)"  # kept: every run's JSON and summary
PORT=$((20000 + RANDOM % 20000))
"$QMETER" serve --model "$MODEL" --port "$PORT" --threads "$THREADS" --max-num-seqs 64 --max-model-len 1024 \
  --kv-cache-mb 2048 > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
  sleep 0.5
done
key() {  # file, key -> value
  grep -o "\"$2\": *[0-9.eE+-]*" "$1" | head -1 | sed 's/.*: *//'
}
bench() {  # name, extra flags...
  local name="$1"; shift
  "$QMETER" bench serve --base-url "http://127.0.0.1:$PORT" --model "$MODEL" --dataset random \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --seed 1 --timeout-s 3600 --output-json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1 \
    || { cat "$OUT/$name.txt"; return 1; }
  printf "%16s: %8.2f out tok/s  %6.3f req/s  p50 TTFT %8.1f ms  p50 TPOT %8.1f ms  prompt %5.1f  completed %s\n" \
    "$name" "$(key "$OUT/$name.json" output_throughput)" "$(key "$OUT/$name.json" request_throughput)" \
    "$(key "$OUT/$name.json" median_ttft_ms)" "$(key "$OUT/$name.json" median_tpot_ms)" \
    "$(awk -v t="$(key "$OUT/$name.json" total_input_tokens)" -v n="$(key "$OUT/$name.json" completed)" \
      'BEGIN { print (n > 0 ? t / n : 0) }')" "$(key "$OUT/$name.json" completed)"
}
echo "model $MODEL, $THREADS engine threads, $(nproc) cores, random prompts of $INPUT_LEN client tokens, $OUTPUT_LEN output tokens"
head -1 "$OUT/serve.log"
bench concurrency-1 --num-prompts 2 --max-concurrency 1 --request-rate inf
bench concurrency-16 --num-prompts 16 --max-concurrency 16 --request-rate inf
one=$(key "$OUT/concurrency-1.json" output_throughput)
sixteen=$(key "$OUT/concurrency-16.json" output_throughput)
awk -v a="$one" -v b="$sixteen" 'BEGIN { printf "batched-decode speedup, 16 streams over 1: %.2fx output tokens/s (target >= 6x)\n", b / a }'
awk -v a="$(key "$OUT/concurrency-1.json" median_tpot_ms)" -v b="$(key "$OUT/concurrency-16.json" median_tpot_ms)" \
  'BEGIN { printf "decode step alone (16 x TPOT at 1 / TPOT at 16): %.2fx\n", 16 * a / b }'
saturated=$(key "$OUT/concurrency-16.json" request_throughput)
if awk -v s="$saturated" 'BEGIN { exit !(s <= 0) }'; then
  echo "the 16-stream run completed nothing: no rate sweep (see $OUT/concurrency-16.txt)"
  exit 1
fi
for f in ${RATE_FRACTIONS:-0.25 0.5 0.75 1.0 1.5}; do
  rate=$(awk -v s="$saturated" -v f="$f" 'BEGIN { printf "%.4g", s * f }')
  bench "rate-$rate" --num-prompts "$PROMPTS" --request-rate "$rate"
done
