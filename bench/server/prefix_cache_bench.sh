#!/usr/bin/env bash
# Issue 20's benchmark: prefix caching in `qmeter serve` under a shared-prefix workload.
# GROUPS system prompts of P tokens, each shared by PER_GROUP requests whose suffixes are S
# distinct tokens (token-id prompts, so the shared part is exactly P tokens), sent one at a time
# with the groups interleaved (g0 r0, g1 r0, ..., g0 r1, ...), streamed, OUTPUT_LEN tokens each.
# The same run against `qmeter serve` with the cache on (the default) and with
# --no-enable-prefix-caching prints TTFT p50/mean (client side: request sent -> first token chunk)
# and the server's prefill positions computed vs taken from the cache (/metrics). With caching,
# every request after its group's first computes only S + (P mod block) positions instead of
# P + S: the prefill work drops by about P/(P+S) on those requests.
#   bench/server/prefix_cache_bench.sh [qmeter] [model spec] [P] [S] [groups] [per group] [output len] [threads]
# e.g. bench/server/prefix_cache_bench.sh build/src/cli/qmeter /work/shared/data/models/stories260K/stories260K.bin 448 32 4 8
#      bench/server/prefix_cache_bench.sh build/src/cli/qmeter synthetic:llama-1b:bf16 512 32 2 4 4
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
MODEL="${2:-synthetic:llama-1b:bf16}"
P="${3:-512}"
S="${4:-32}"
GROUPS_N="${5:-2}"
PER_GROUP="${6:-4}"
OUTPUT_LEN="${7:-4}"
THREADS="${8:-2}"
OUT="$(mktemp -d)"  # kept: each mode's server log and client JSON
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null || true' EXIT

run_mode() {  # name, extra serve flags...
  local name="$1"; shift
  local port=$((20000 + RANDOM % 20000))
  "$QMETER" serve --model "$MODEL" --port "$port" --threads "$THREADS" --max-model-len $((P + S + OUTPUT_LEN + 16)) \
    --kv-cache-mb 1024 "$@" > "$OUT/$name.serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { cat "$OUT/$name.serve.log"; exit 1; }
    sleep 0.5
  done
  python3 - "$port" "$P" "$S" "$GROUPS_N" "$PER_GROUP" "$OUTPUT_LEN" "$name" > "$OUT/$name.json" <<'EOF'
import http.client, json, random, statistics, sys, time
port, P, S, G, M, out_len, name = int(sys.argv[1]), *map(int, sys.argv[2:7]), sys.argv[7]
rng = random.Random(20)
# Token ids 10..499 exist in every model here (stories260K has 512); 1 is BOS (llama2.c, synthetic).
systems = [[1, 400 + g] + [rng.randrange(10, 500) for _ in range(P - 2)] for g in range(G)]
first = iter(range(10, 10 + G * M))  # distinct first suffix tokens: prompts share exactly P tokens
prompts = {(g, j): systems[g] + [next(first)] + [rng.randrange(10, 500) for _ in range(S - 1)]
           for j in range(M) for g in range(G)}
def metrics():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    c.request("GET", "/metrics")
    vals = {}
    for line in c.getresponse().read().decode().splitlines():
        if line and not line.startswith("#") and "{" in line:
            vals[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return vals
ttft = []
for j in range(M):
    for g in range(G):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        body = json.dumps({"prompt": prompts[(g, j)], "max_tokens": out_len, "temperature": 0,
                           "ignore_eos": True, "stream": True})
        t0 = time.perf_counter()
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        first_token = None
        for line in r:
            if first_token is None and line.startswith(b"data: {") and b'"text":"' in line and b'"text":""' not in line:
                first_token = time.perf_counter() - t0
        ttft.append(first_token)
m = metrics()
json.dump({"mode": name, "ttft_s": ttft, "ttft_p50_ms": 1000 * statistics.median(ttft),
           "ttft_mean_ms": 1000 * statistics.mean(ttft),
           "prefill_computed": m.get("qmeter:prefill_tokens_computed_total"),
           "prefill_cached": m.get("qmeter:prefill_tokens_cached_total"),
           "prefix_cache_queries": m.get("vllm:prefix_cache_queries_total"),
           "prefix_cache_hits": m.get("vllm:prefix_cache_hits_total")}, sys.stdout)
EOF
  kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%4s: TTFT p50 %9.1f ms  mean %9.1f ms  prefill computed %7d  cached %7d  prefix-cache hits/queries %d/%d" % (j["mode"], j["ttft_p50_ms"], j["ttft_mean_ms"], j["prefill_computed"], j["prefill_cached"], j["prefix_cache_hits"], j["prefix_cache_queries"]))' "$OUT/$name.json"
}

echo "model $MODEL, $THREADS engine threads, $(nproc) cores: $GROUPS_N system prompts of P=$P tokens x $PER_GROUP requests, suffix S=$S, $OUTPUT_LEN output tokens, one request at a time"
run_mode on
head -1 "$OUT/on.serve.log"
run_mode off --no-enable-prefix-caching
python3 - "$OUT/on.json" "$OUT/off.json" "$P" "$S" "$GROUPS_N" "$PER_GROUP" <<'EOF'
import json, sys
on, off = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
P, S, G, M = map(int, sys.argv[3:7])
cached_req = G * (M - 1) / (G * M)
print("prefill work on/off: %.3f (drop %.1f%%); ideal whole-block drop on the %d of %d requests that share a cached prefix: P/(P+S) = %.1f%% -> %.1f%% overall"
      % (on["prefill_computed"] / off["prefill_computed"], 100 * (1 - on["prefill_computed"] / off["prefill_computed"]),
         G * (M - 1), G * M, 100 * P / (P + S), 100 * cached_req * P / (P + S)))
print("TTFT p50 on/off: %.3f (%.1f ms vs %.1f ms)" % (on["ttft_p50_ms"] / off["ttft_p50_ms"], on["ttft_p50_ms"], off["ttft_p50_ms"]))
EOF
echo "(JSON and server logs in $OUT)"
