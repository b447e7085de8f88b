#!/usr/bin/env bash
# Compare qmeter's load generator with a plain Python asyncio+aiohttp client
# (reference_client.py) against the same qmeter mock server, in one run.
#
#   bench/loadgen/python_reference/compare.sh [path/to/qmeter]
#
# For each client: the highest constant rate it sustains (p99 send lag < LAG_MS, no failures,
# every request completed), found on a rate ladder plus one bisection step, then the rate it
# achieves when asked for 2x and 4x that sustained rate. See README.md.
#
# Environment knobs (defaults in brackets):
#   PYTHON         interpreter that can import aiohttp [python3, else /usr/bin/python3]
#   LADDER         rates tried upward, stop at the first failure ["250 500 1000 2000 4000 8000 16000"]
#   MIN_RATE       when the first rung fails, halve down to this rate [50]
#   LAG_MS         p99 send-lag bound of a sustained rate, ms [1]
#   SECONDS_WORTH  requests per run = rate x this, clamped to [MIN_N, MAX_N] [2]
#   MIN_N / MAX_N  [400] / [40000]
#   TRIES          a rung passes when any of TRIES runs passes (shared 2-core boxes are noisy) [2]
#   BISECT         1: one bisection step between the last pass and the first failure [1]
#   RUN_TIMEOUT    wall-clock cap of one client run, s [120]
#   MOCK_THREADS   mock-server IO threads [2]
#   COPY_QMETER    1: run a private copy of the binary (immune to a concurrent relink) [1]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
QMETER=${1:-$ROOT/build/src/cli/qmeter}
LADDER=${LADDER:-"250 500 1000 2000 4000 8000 16000"}
MIN_RATE=${MIN_RATE:-50}
LAG_MS=${LAG_MS:-1}
SECONDS_WORTH=${SECONDS_WORTH:-2}
MIN_N=${MIN_N:-400}
MAX_N=${MAX_N:-40000}
TRIES=${TRIES:-2}
BISECT=${BISECT:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
MOCK_THREADS=${MOCK_THREADS:-2}
MODEL=qmeter-mock
OUTPUT_LEN=16

die() { echo "compare.sh: $*" >&2; exit 1; }

[[ -x "$QMETER" ]] || die "qmeter binary not found or not executable: $QMETER"
QMETER=$(cd "$(dirname "$QMETER")" && pwd)/$(basename "$QMETER")
if [[ -z "${PYTHON:-}" ]]; then
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import aiohttp' 2>/dev/null; then PYTHON=$cand; break; fi
  done
fi
[[ -n "${PYTHON:-}" ]] || die "no python3 with aiohttp (Debian: apt-get install -y python3-aiohttp; or set PYTHON=)"
command -v curl >/dev/null || die "curl is required"

WORK=$(mktemp -d -t qmeter-pyref.XXXXXX)
echo "work dir: $WORK"
RESULTS=$WORK/results.tsv

: >"$RESULTS"

MOCK_PID=""
QMETER_COPY=""
cleanup() {
  if [[ -n "$MOCK_PID" ]] && kill -0 "$MOCK_PID" 2>/dev/null; then
    kill "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
  fi
}
on_exit() {
  cleanup
  [[ -n "$QMETER_COPY" ]] && rm -f "$QMETER_COPY"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Run a private copy: the tree's binary may be relinked by a concurrent build mid-run.
if [[ ${COPY_QMETER:-1} == 1 ]]; then
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    cp "$QMETER" "$WORK/qmeter" 2>/dev/null && "$WORK/qmeter" bench serve --help >/dev/null 2>&1 && break
    sleep 3   # being relinked right now
  done
  "$WORK/qmeter" bench serve --help >/dev/null 2>&1 || die "cannot run a copy of $QMETER"
  echo "qmeter: $QMETER (copied to $WORK/qmeter, $(date -r "$QMETER" '+built %F %T'))"
  QMETER=$WORK/qmeter
  QMETER_COPY=$QMETER   # removed on exit (it is large); the outputs stay
fi

# --- mock server ---------------------------------------------------------------------------
PORT=""
for attempt in 1 2 3 4 5; do
  PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$QMETER" mock-server --port "$PORT" --ttft-ms 0 --itl-ms 0 --tokens-before-eos "$OUTPUT_LEN" \
    --threads "$MOCK_THREADS" >"$WORK/mock.log" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$MOCK_PID" 2>/dev/null || break
    sleep 0.05
  done
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  cleanup; MOCK_PID=""   # port race or slow start: pick another port
done
[[ -n "$MOCK_PID" ]] || die "mock server did not come up; see $WORK/mock.log"
BASE_URL=http://127.0.0.1:$PORT
echo "mock server: $BASE_URL (pid $MOCK_PID, --ttft-ms 0 --itl-ms 0 --output-len $OUTPUT_LEN --threads $MOCK_THREADS)"

QMETER_EXTRA=()
if "$QMETER" bench serve --help 2>/dev/null | grep -q -- '--max-connections'; then
  QMETER_EXTRA=(--max-connections 1024)
  echo "qmeter: bench serve has --max-connections: passing --max-connections 1024"
else
  echo "qmeter: bench serve has no --max-connections flag: not passed"
fi
echo "python: $("$PYTHON" -c 'import sys, aiohttp; print(sys.executable, sys.version.split()[0], "aiohttp", aiohttp.__version__)')"
echo "host: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# --- helpers ---------------------------------------------------------------------------------
calc() { "$PYTHON" -c "print($1)"; }
fmt_rate() { "$PYTHON" -c "r=float('$1'); print(int(r) if r == int(r) else round(r, 2))"; }
num_prompts() { "$PYTHON" -c "print(min($MAX_N, max($MIN_N, round(float('$1') * $SECONDS_WORTH))))"; }

# run_client CLIENT RATE TAG -> prints "ok thr lag50 lag99 ttft99 failed completed n kinds" (ok: 1 sustained, 0 not)
# and appends a row to results.tsv
run_client() {
  local client=$1 rate=$2 tag=$3 n json log rc
  n=$(num_prompts "$rate")
  json=$WORK/$client-$tag-r$rate.json
  log=$WORK/$client-$tag-r$rate.log
  if [[ $client == qmeter ]]; then
    timeout "$RUN_TIMEOUT" "$QMETER" bench serve --base-url "$BASE_URL" --model "$MODEL" --dataset random \
      --input-len 16 --output-len "$OUTPUT_LEN" --num-prompts "$n" --request-rate "$rate" --arrival constant \
      "${QMETER_EXTRA[@]}" --output-json "$json" >"$log" 2>&1
  else
    timeout "$RUN_TIMEOUT" "$PYTHON" "$HERE/reference_client.py" --base-url "$BASE_URL" --model "$MODEL" \
      --rate "$rate" --num-prompts "$n" --max-tokens "$OUTPUT_LEN" --max-connections 1024 \
      --output-json "$json" >"$log" 2>&1
  fi
  rc=$?
  local line
  line=$("$PYTHON" - "$json" "$n" "$LAG_MS" "$rc" <<'EOF'
import json, math, sys
path, n, lag_bound, rc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
try:
    d = json.load(open(path))
except Exception:
    print(f"0 0 nan nan nan {n} 0 {n} no_json(rc={rc})")
    sys.exit()
g = lambda k: float(d.get(k, float("nan")) if d.get(k) is not None else float("nan"))
kinds = ",".join(f"{k}:{v}" for k, v in sorted((d.get("failed_by_kind") or {}).items())) or "-"
lag99 = g("p99_send_lag_ms")
ok = int(rc == 0 and d.get("failed", 1) == 0 and d.get("completed", 0) == n
         and not math.isnan(lag99) and lag99 < lag_bound)
print(ok, g("request_throughput"), g("p50_send_lag_ms"), lag99, g("p99_ttft_ms"),
      d.get("failed", 0), d.get("completed", 0), n, kinds)
EOF
)
  printf '%s\t%s\t%s\t%s\n' "$client" "$tag" "$rate" "$line" | tr ' ' '\t' >>"$RESULTS"
  echo "  $client $tag rate=$(fmt_rate "$rate") n=$n -> $line" >&2
  echo "$line"
}

# try_rate CLIENT RATE: 0 when any of TRIES runs sustains RATE
try_rate() {
  local t res
  for ((t = 1; t <= TRIES; t++)); do
    res=$(run_client "$1" "$2" "ladder")
    [[ ${res%% *} == 1 ]] && return 0
  done
  return 1
}

# find_sustained CLIENT -> prints the sustained rate (0 if none)
find_sustained() {
  local client=$1 pass=0 fail="" r first=""
  for r in $LADDER; do
    [[ -z $first ]] && first=$r
    if try_rate "$client" "$r"; then pass=$r; else fail=$r; break; fi
  done
  if [[ $pass == 0 && -n $first ]]; then
    r=$(calc "$first / 2")
    while "$PYTHON" -c "import sys; sys.exit(0 if $r >= $MIN_RATE else 1)"; do
      if try_rate "$client" "$r"; then pass=$r; break; fi
      fail=$r
      r=$(calc "$r / 2")
    done
  fi
  if [[ $BISECT == 1 && $pass != 0 && -n $fail ]] && "$PYTHON" -c "import sys; sys.exit(0 if $fail > $pass else 1)"; then
    r=$(calc "round(($pass + $fail) / 2, 2)")
    if try_rate "$client" "$r"; then pass=$r; fi
  fi
  echo "$pass"
}

# --- runs ------------------------------------------------------------------------------------
declare -A SUSTAINED ACH2 ACH4 FAIL2 FAIL4 KINDS2 KINDS4
for client in qmeter python; do
  echo "== $client: searching the sustained rate (p99 send lag < ${LAG_MS} ms, no failures)" >&2
  s=$(find_sustained "$client")
  SUSTAINED[$client]=$s
  echo "== $client: sustained $(fmt_rate "$s") req/s" >&2
  for m in 2 4; do
    if [[ $s == 0 ]]; then
      eval "ACH$m[$client]=nan; FAIL$m[$client]=-; KINDS$m[$client]=-"
      continue
    fi
    res=$(run_client "$client" "$(calc "$s * $m")" "over${m}x")
    read -r _ thr _ _ _ failed _ _ kinds <<<"$res"
    eval "ACH$m[$client]=$thr; FAIL$m[$client]=$failed; KINDS$m[$client]='$kinds'"
  done
done

# --- report ----------------------------------------------------------------------------------
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$PYTHON" - "$RESULTS" <<'EOF'
import sys
hdr = ("client", "phase", "rate", "N", "achieved/s", "lag p50 ms", "lag p99 ms", "ttft p99 ms", "failed", "in bound", "failed_by_kind")
rows = []
for line in open(sys.argv[1]):
    c, tag, rate, ok, thr, l50, l99, t99, failed, completed, n, kinds = line.rstrip("\n").split("\t")
    r = float(rate)
    rows.append((c, tag, f"{r:g}", n, f"{float(thr):.0f}", f"{float(l50):.3f}", f"{float(l99):.3f}",
                 f"{float(t99):.2f}", failed, "yes" if ok == "1" else "no", kinds))
w = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
fmt = "  ".join(("{:<%d}" if i in (0, 1, len(hdr) - 1) else "{:>%d}") % w[i] for i in range(len(hdr)))
print(fmt.format(*hdr))
print("  ".join("-" * x for x in w))
for r in rows:
    print(fmt.format(*r))
EOF
echo

"$PYTHON" - "${SUSTAINED[qmeter]}" "${SUSTAINED[python]}" \
  "${ACH2[qmeter]}" "${ACH4[qmeter]}" "${ACH2[python]}" "${ACH4[python]}" \
  "${FAIL2[qmeter]}" "${FAIL4[qmeter]}" "${FAIL2[python]}" "${FAIL4[python]}" \
  "${KINDS2[qmeter]}" "${KINDS4[qmeter]}" "${KINDS2[python]}" "${KINDS4[python]}" "$LAG_MS" <<'EOF'
import math, sys
a = sys.argv[1:]
sq, sp = float(a[0]), float(a[1])
ach = {("qmeter", 2): float(a[2]), ("qmeter", 4): float(a[3]), ("python", 2): float(a[4]), ("python", 4): float(a[5])}
fail = {("qmeter", 2): a[6], ("qmeter", 4): a[7], ("python", 2): a[8], ("python", 4): a[9]}
kinds = {("qmeter", 2): a[10], ("qmeter", 4): a[11], ("python", 2): a[12], ("python", 4): a[13]}
lag = a[14]
sus = {"qmeter": sq, "python": sp}
print(f"sustained rate (p99 send lag < {lag} ms, 0 failures): qmeter {sq:g} req/s, python {sp:g} req/s")
if sp > 0:
    ratio = sq / sp
    print(f"qmeter / python sustained: {ratio:.2f}x   (target >= 5x: {'MET' if ratio >= 5 else 'NOT MET'})")
else:
    print("qmeter / python sustained: n/a (python sustained no rung)")
print()
print("past saturation: asked for 2x / 4x the client's own sustained rate; achieved request_throughput")
for c in ("qmeter", "python"):
    s = sus[c]
    for m in (2, 4):
        x = ach[(c, m)]
        if s <= 0 or math.isnan(x):
            print(f"  {c:<6} {m}x: n/a")
            continue
        k = kinds[(c, m)]
        print(f"  {c:<6} {m}x: asked {m * s:g}/s, achieved {x:.0f}/s = {100 * x / s:.0f}% of sustained"
              f" ({100 * x / (m * s):.0f}% of asked),"
              f" failed {fail[(c, m)]}{'' if k == '-' else ' (' + k + ')'}")
for m in (2, 4):
    s, x = sq, ach[("qmeter", m)]
    if s > 0 and not math.isnan(x):
        print(f"qmeter at {m}x: {100 * x / s:.0f}% of sustained (target >= 90%: {'MET' if x >= 0.9 * s else 'NOT MET'})")
EOF
echo
echo "all outputs: $WORK"
