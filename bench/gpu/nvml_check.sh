#!/usr/bin/env bash
# Checks qmeter's NVML energy figures on a real NVIDIA machine.
#
# Builds a CUDA SGEMM loop (bench/gpu/gpu_load.cu) with nvcc, runs it under
#   qmeter energy --energy nvml --idle-s IDLE --output-json ...
# while nvidia-smi samples power in the background, then compares for each GPU:
#   - the NVML total-energy counter delta (what qmeter uses),
#   - qmeter's trapezoidal integral of the sampled power,
#   - nvidia-smi's power.draw (and power.draw.instant where the driver has it) integrated over the
#     same window.
# Usage (from anywhere; it works in the repository root):
#   bench/gpu/nvml_check.sh [LOAD_SECONDS=20] [IDLE_SECONDS=3]
# Environment: QMETER (qmeter binary; default build/src/cli/qmeter, built if missing),
#   NVML_CHECK_OUT (output folder; default build/nvml-check), NVCC (default nvcc),
#   GPU_LOAD_ARGS (extra args after the seconds: "N BUSY_MS IDLE_MS", default "4096 1500 500").
# Exit status: 0 when the counter and the integral agree within 5 % on every GPU, 1 otherwise,
# 2 when something needed is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

LOAD_SECONDS="${1:-20}"
IDLE_SECONDS="${2:-3}"
QMETER="${QMETER:-build/src/cli/qmeter}"
OUT="${NVML_CHECK_OUT:-build/nvml-check}"
NVCC="${NVCC:-nvcc}"
GPU_LOAD_ARGS="${GPU_LOAD_ARGS:-4096 1500 500}"
mkdir -p "$OUT"

say() { echo "nvml_check: $*"; }
die() { echo "nvml_check: error: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this script needs an NVIDIA driver"
command -v python3 >/dev/null || die "python3 not found (used to compare the readings)"
if ! command -v "$NVCC" >/dev/null; then
  [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc || die "nvcc not found (set NVCC=...)"
fi

if [ ! -x "$QMETER" ]; then
  say "no qmeter at $QMETER: building it (build/, RelWithDebInfo)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQMETER_BUILD_TESTS=OFF -DQMETER_BUILD_BENCH=OFF >/dev/null
  cmake --build build --target qmeter
  QMETER=build/src/cli/qmeter
fi

say "driver and GPUs:"
nvidia-smi --query-gpu=index,name,driver_version,power.limit,clocks.max.sm --format=csv,noheader | sed 's/^/  /'

say "building gpu_load with $NVCC"
ARCH_FLAGS=()
if "$NVCC" --help 2>/dev/null | grep -q -- "-arch=native\|native"; then ARCH_FLAGS=(-arch=native); fi
if ! "$NVCC" -O2 "${ARCH_FLAGS[@]}" -o "$OUT/gpu_load" bench/gpu/gpu_load.cu 2>"$OUT/nvcc.log"; then
  say "nvcc with ${ARCH_FLAGS[*]:-default arch} failed; retrying with the default arch"
  "$NVCC" -O2 -o "$OUT/gpu_load" bench/gpu/gpu_load.cu 2>>"$OUT/nvcc.log" || { cat "$OUT/nvcc.log" >&2; die "nvcc failed"; }
fi

# nvidia-smi in the background, every 100 ms, as long as qmeter runs.
FIELDS="timestamp,index,power.draw"
if nvidia-smi --help-query-gpu 2>/dev/null | grep -q '"power.draw.instant"'; then FIELDS="$FIELDS,power.draw.instant"; fi
FIELDS="$FIELDS,clocks.sm,utilization.gpu,temperature.gpu"
echo "$FIELDS" >"$OUT/smi.csv"
nvidia-smi --query-gpu="$FIELDS" --format=csv,noheader,nounits -lms 100 >>"$OUT/smi.csv" 2>"$OUT/smi.err" &
SMI_PID=$!
cleanup() { kill "$SMI_PID" 2>/dev/null || true; wait "$SMI_PID" 2>/dev/null || true; }
trap cleanup EXIT
sleep 0.5

say "running gpu_load for ${LOAD_SECONDS} s under qmeter energy (idle baseline ${IDLE_SECONDS} s)"
set +e
# shellcheck disable=SC2086
"$QMETER" energy --energy nvml --power-interval-ms 50 --idle-s "$IDLE_SECONDS" --include-samples \
  --output-json "$OUT/energy.json" -- "$OUT/gpu_load" "$LOAD_SECONDS" $GPU_LOAD_ARGS 2>"$OUT/qmeter.err" | tee "$OUT/gpu_load.out"
STATUS=${PIPESTATUS[0]}
set -e
sleep 0.3
cleanup
trap - EXIT
cat "$OUT/qmeter.err"
[ "$STATUS" -eq 0 ] || die "qmeter energy exited with $STATUS (see above)"

python3 - "$OUT/energy.json" "$OUT/smi.csv" <<'PY'
import csv, datetime, json, sys

report = json.load(open(sys.argv[1]))
t0, t1 = report["window_start_unix_s"], report["window_end_unix_s"]
rows = list(csv.reader(open(sys.argv[2])))
header = [h.strip() for h in rows[0]]

def num(text):
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]" and the like

smi = {}  # gpu index -> column -> [(unix_s, value)]
for row in rows[1:]:
    if len(row) != len(header):
        continue
    rec = dict(zip(header, (c.strip() for c in row)))
    try:
        when = datetime.datetime.strptime(rec["timestamp"], "%Y/%m/%d %H:%M:%S.%f").timestamp()
    except ValueError:
        continue
    for col in ("power.draw", "power.draw.instant"):
        if col in rec and num(rec[col]) is not None:
            smi.setdefault(int(rec["index"]), {}).setdefault(col, []).append((when, num(rec[col])))

def integrate(points, a, b):
    """Trapezoid of (t, W) over [a, b], clipped to the points; returns (J, seconds covered)."""
    pts = sorted(points)
    total, covered = 0.0, 0.0
    for (ta, pa), (tb, pb) in zip(pts, pts[1:]):
        lo, hi = max(a, ta), min(b, tb)
        if hi <= lo or tb <= ta:
            continue
        f = lambda t: pa + (pb - pa) * (t - ta) / (tb - ta)
        total += 0.5 * (f(lo) + f(hi)) * (hi - lo)
        covered += hi - lo
    return total, covered

dur = report["duration_s"]
print(f"\nnvml_check: window {dur:.2f} s (the whole gpu_load command), sampling every {report['power_interval_ms']} ms, "
      f"sampler CPU {report['sampler_cpu_s']:.3f} s")
ok = True
for d in report["devices"]:
    i = d["index"]
    counter, integ = d["counter_energy_j"], d["integrated_energy_j"]
    print(f"GPU {i} {d['name']} ({d['power_kind']} power, limit {d['power_limit_w']} W)")
    print(f"  counter (NVML total energy)   : {counter:10.1f} J   <- used ({d['energy_used']})" if counter is not None
          else "  counter (NVML total energy)   :        n/a")
    print(f"  qmeter integrated power       : {integ:10.1f} J" if integ is not None else "  qmeter integrated power       :        n/a")
    if counter and integ:
        rel = (integ - counter) / counter * 100
        print(f"    integrated vs counter       : {rel:+9.2f} %")
        if abs(rel) > 5:
            ok = False
    ref = counter if counter else integ
    for col in ("power.draw", "power.draw.instant"):
        pts = smi.get(i, {}).get(col)
        if not pts:
            continue
        joules, covered = integrate(pts, t0, t1)
        if covered < 0.5 * dur:
            print(f"  nvidia-smi {col:<18}: too few samples in the window ({covered:.1f} s of {dur:.1f} s)")
            continue
        scaled = joules * dur / covered  # nvidia-smi's first/last sample may fall just inside the window
        inside = [w for t, w in pts if t0 <= t <= t1]
        print(f"  nvidia-smi {col:<18}: {scaled:10.1f} J   ({len(inside)} samples, mean {sum(inside)/max(1,len(inside)):.1f} W, "
              f"peak {max(inside) if inside else float('nan'):.1f} W)" + (f"   {((scaled - ref) / ref * 100):+.2f} % vs qmeter" if ref else ""))
    print(f"  qmeter avg / peak / idle power: {d['avg_power_w']:.1f} / {d['peak_power_w']:.1f} / "
          f"{d['idle_power_w'] if d['idle_power_w'] is not None else float('nan'):.1f} W; above idle "
          f"{d['above_idle_energy_j'] if d['above_idle_energy_j'] is not None else float('nan'):.1f} J; {d['samples']} samples")
print("nvml_check: " + ("PASS: counter and integrated power agree within 5 % on every GPU" if ok
                        else "FAIL: counter and integrated power differ by more than 5 %"))
sys.exit(0 if ok else 1)
PY
