#!/usr/bin/env bash
# Issue 20's multi-turn benchmark: conversations replayed against `qmeter serve` (stories260K) at a
# fixed conversation arrival rate, TTFT by turn index with the KV cache in f32 vs int8 in the same
# --kv-cache-mb (int8 holds ~3.5x the tokens, so more conversations keep their history
# resident: the KV-capacity effect). Two workloads:
#   - sharegpt-multiturn on the shared ShareGPT file (which keeps only each conversation's first
#     human turn, so every conversation there is one turn: shared/data/README.md);
#   - multiturn: TURNS synthetic turns of USER_LEN-token user messages and REPLY_LEN-token replies,
#     THINK seconds between a reply and the next turn (exact lengths through /tokenize).
#   [RATE=4] [CONVS=40] [TURNS=3] [USER_LEN=48] [REPLY_LEN=48] [THINK=0.2] [KV_MIB=1]
#   bench/server/multiturn_kv_bench.sh [build/src/cli/qmeter] [shared data folder]
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
DATA="${2:-${QMETER_SHARED_DATA:-../shared/data}}"
MODEL="$DATA/models/stories260K/stories260K.bin"
SHAREGPT="$DATA/workloads/sharegpt_v3_filtered_500.json"
RATE="${RATE:-4}" CONVS="${CONVS:-40}" TURNS="${TURNS:-3}" USER_LEN="${USER_LEN:-48}" REPLY_LEN="${REPLY_LEN:-48}"
THINK="${THINK:-0.2}" KV_MIB="${KV_MIB:-1}"
OUT="$(mktemp -d)"  # kept: every run's JSON, summary and server log
SERVER=""
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null || true' EXIT

serve() {  # dtype
  PORT=$((20000 + RANDOM % 20000))
  "$QMETER" serve --model "$MODEL" --port "$PORT" --threads 1 --kv-cache-mb "$KV_MIB" --kv-cache-dtype "$1" \
    > "$OUT/serve-$1.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
    kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve-$1.log"; exit 1; }
    sleep 0.1
  done
}
report() {  # name -> one line per turn index from the JSON's "sessions" object
  python3 - "$OUT/$1.json" "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); s = j["sessions"]
print(f"{sys.argv[2]:>22}: {s['sessions']} conversations ({s['completed_sessions']} complete), "
      f"concurrent mean {s['mean_concurrent_sessions']:.2f} max {s['max_concurrent_sessions']}, "
      f"p50 TTFT {j['median_ttft_ms']:.1f} ms, failed {j['failed']}")
for t in s["by_turn"]:
    tt = t["ttft"]
    print(f"{'':>24}turn {t['turn']}: p50 TTFT {tt['median_ms'] or float('nan'):8.1f} ms  p99 {tt.get('p99_ms') or float('nan'):8.1f} ms  "
          f"context {t['mean_context_tokens'] or 0:6.1f} tok (max {t['max_context_tokens'] or 0:.0f})  n={t['completed']}")
PY
}
bench() {  # name, flags...
  local name="$1"; shift
  "$QMETER" bench serve --base-url "http://127.0.0.1:$PORT" --model stories260K.bin --request-rate "$RATE" --seed 1 \
    --timeout-s 600 --output-json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1 || { cat "$OUT/$name.txt"; return 1; }
  report "$name"
}
echo "stories260K, KV pool $KV_MIB MiB, $RATE conversations/s (Poisson), $(nproc) cores; outputs in $OUT"
for dtype in f32 int8; do
  serve "$dtype"
  grep -o "[0-9]* KV blocks = [0-9]* tokens ([a-z0-9]* KV cache)" "$OUT/serve-$dtype.log" | sed "s/^/$dtype: /"
  bench "sharegpt-$dtype" --dataset "sharegpt-multiturn:$SHAREGPT" --num-prompts "$CONVS" --think-time-s "$THINK"
  bench "multiturn-$dtype" --dataset multiturn --num-prompts "$CONVS" --turns "$TURNS" --input-len "$USER_LEN" \
    --output-len "$REPLY_LEN" --think-time-s "$THINK" --exact-lengths
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=""
done
