#!/usr/bin/env bash
# Issue 4's benchmark: `qmeter bench serve` against `qmeter serve` on a synthetic LLaMA-1B shape
# (BF16). Prints output tokens/s at request rates from low to saturation, and the batched-decode
# speedup: output tokens/s with 16 concurrent streams over 1 stream (closed loop).
#   bench/server/serve_bench.sh [build/src/cli/qmeter] [model spec] [threads]
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
MODEL="${2:-synthetic:llama-1b:bf16}"
THREADS="${3:-2}"
OUT="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
"$QMETER" serve --model "$MODEL" --port "$PORT" --threads "$THREADS" --max-num-seqs 64 --max-model-len 1024 \
  --kv-cache-memory 2048 > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.5
done
bench() {  # name, extra flags...
  local name="$1"; shift
  "$QMETER" bench serve --base-url "http://127.0.0.1:$PORT" --model "$MODEL" --dataset random \
    --input-len 32 --output-len 32 --seed 1 --output-json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1
  python3 -c "import json;d=json.load(open('$OUT/$name.json'));print(f\"{'$name':>14}: {d['output_throughput']:8.2f} out tok/s  {d['request_throughput']:6.3f} req/s  p50 TPOT {d['median_tpot_ms']:8.1f} ms  completed {d['completed']}\")" 2>/dev/null \
    || grep -E "Output token throughput|Successful" "$OUT/$name.txt"
  jq -r .output_throughput "$OUT/$name.json" 2>/dev/null > "$OUT/$name.tput" || true
}
echo "model $MODEL, $THREADS threads ($(nproc) cores)"
bench concurrency-1 --num-prompts 4 --max-concurrency 1 --request-rate inf
bench concurrency-16 --num-prompts 32 --max-concurrency 16 --request-rate inf
for rate in 0.05 0.2 0.5 1 2; do bench "rate-$rate" --num-prompts 16 --request-rate "$rate"; done
one=$(grep -o '"output_throughput": *[0-9.e+-]*' "$OUT/concurrency-1.json" | head -1 | sed 's/.*: *//')
sixteen=$(grep -o '"output_throughput": *[0-9.e+-]*' "$OUT/concurrency-16.json" | head -1 | sed 's/.*: *//')
awk -v a="$one" -v b="$sixteen" 'BEGIN { printf "batched-decode speedup, 16 streams over 1: %.2fx (target >= 6x)\n", b / a }'
