#!/usr/bin/env bash
# Issue 15's benchmark: the Slurm executor's cost over the local one, on the private two-node test
# cluster (tests/slurm/cluster.sh) and the stories260K model. An 8-run study (4 methods x 2
# repeats) runs three ways, each into a fresh database:
#   local            qmeter run (one run after another, this process)
#   slurm serial     --executor slurm --max-parallel 1 (same one-at-a-time order: the difference
#                    over local, divided by 8, is the Slurm path's overhead per run)
#   slurm parallel   --executor slurm (two nodes, two one-CPU tasks each: the wall time users get)
# and prints, from the slurm databases and task files: submission to start per run (the
# coordinator's submit time to the task's own start, ms), and the merge time of each run.
#   bench/slurm/slurm_bench.sh [build/src/cli/qmeter] [prompts per point]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
QMETER="$(realpath "${1:-build/src/cli/qmeter}")"
PROMPTS="${2:-40}"
DATA="${QMETER_SHARED_DATA:-$ROOT/../shared/data}"
OUT="$(mktemp -d /tmp/qmeter-slurm-bench.XXXXXX)"  # kept: databases, logs
export QMETER_SLURM_DIR="/tmp/qsb-$$"
export QMETER_SLURM_PORT_BASE=17317
"$ROOT/tests/slurm/cluster.sh" start > /dev/null 2>&1 || { echo "cannot start the test cluster"; exit 1; }
trap '"$ROOT/tests/slurm/cluster.sh" stop --clean > /dev/null 2>&1 || true' EXIT
export SLURM_CONF="$QMETER_SLURM_DIR/slurm.conf"
cat > "$OUT/s.yaml" <<YAML
study: {name: slurm-bench}
models: [{name: stories, path: "$DATA/models/stories260K/stories260K.bin"}]
methods: [fp32, bf16, {name: fp32, kv-cache-dtype: int8}, {name: w8a16}]
backend: {kind: embedded, options: {threads: 1, max_num_seqs: 16}}
workloads:
  - {name: w, input_len: 16, output_len: 16, num_prompts: $PROMPTS, arrival: constant, rates: [20, inf]}
quality:
  - {task: "perplexity:$DATA/eval/tinystories_val.txt", limit: 8}
energy: {source: model, idle_s: 0.2}
repeats: 2
seed: 5
YAML
cd "$OUT"
wall() {  # name, qmeter args... -> seconds
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$QMETER" "$@" > "$OUT/$name.log" 2>&1 || { tail -30 "$OUT/$name.log"; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
calc() { awk "BEGIN {print $1}"; }
local_s=$(wall local run s.yaml --db local.db --no-report)
serial_s=$(wall serial run s.yaml --db serial.db --executor slurm --max-parallel 1 --poll-interval-s 0.2 --no-report)
parallel_s=$(wall parallel run s.yaml --db parallel.db --executor slurm --poll-interval-s 0.2 --no-report)
for db in local serial parallel; do
  n=$(sqlite3 "$db.db" "SELECT COUNT(*) FROM runs WHERE status='complete'")
  [ "$n" = 8 ] || { echo "$db: $n of 8 runs complete"; exit 1; }
done
# Submission to start: the task's own start (task.json, ms) minus the coordinator's submit time.
startup() {  # db name -> "mean min max" ms
  local db="$1" sum=0 max=0 n=0 min=999999999
  while IFS='|' read -r run submit; do
    start=$(grep -o '"start_unix_ms":[0-9]*' "$db.slurm/shards/$run.task.json" | cut -d: -f2)
    d=$((start - submit)); sum=$((sum + d)); n=$((n + 1)); [ "$d" -gt "$max" ] && max=$d; [ "$d" -lt "$min" ] && min=$d
  done < <(sqlite3 "$db.db" "SELECT run_id, submit_unix_ms FROM run_placements")
  echo "$((sum / n)) $min $max"
}
merge_ms() {  # log -> "mean max" ms
  grep -o 'merged in [0-9.]* ms' "$1" | awk '{s+=$3; if ($3>m) m=$3; n++} END {printf "%.1f %.1f", s/n, m}'
}
read -r ser_start_mean ser_start_min ser_start_max <<< "$(startup serial)"
read -r par_start_mean par_start_min par_start_max <<< "$(startup parallel)"
read -r merge_mean merge_max <<< "$(merge_ms "$OUT/serial.log")"
printf "8-run study (stories260K, %s prompts x 2 points + perplexity per run), files in %s\n" "$PROMPTS" "$OUT"
printf "  local executor:                 %7.1f s\n" "$local_s"
printf "  slurm, --max-parallel 1:        %7.1f s  (%.2fx local; overhead per run %.2f s)\n" "$serial_s" \
  "$(calc "$serial_s / $local_s")" "$(calc "($serial_s - $local_s) / 8")"
printf "  slurm, 2 nodes x 2 tasks:       %7.1f s  (%.2fx local)\n" "$parallel_s" "$(calc "$parallel_s / $local_s")"
printf "  submission to start:            %s ms for the first task to start (sbatch to the task's own first line)\n" \
  "$(( ser_start_min < par_start_min ? ser_start_min : par_start_min ))"
printf "  submission to start per run:    parallel mean %s ms (max %s), serial mean %s ms (max %s): both include\n" \
  "$par_start_mean" "$par_start_max" "$ser_start_mean" "$ser_start_max"
printf "                                  waiting for a free slot behind earlier tasks\n"
printf "  merge per run:                  mean %s ms (max %s)\n" "$merge_mean" "$merge_max"
