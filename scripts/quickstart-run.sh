#!/usr/bin/env bash
# The quickstart with a built qmeter binary ($1): train (or reuse) the reference model, run the
# quickstart study on the embedded engine, and write the HTML report.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
QMETER="$(cd "$(dirname "${1:-build/src/cli/qmeter}")" && pwd)/$(basename "${1:-build/src/cli/qmeter}")"
OUT="${QMETER_QUICKSTART_OUT:-$ROOT/out/quickstart}"
CACHE="${QMETER_CACHE_DIR:-$ROOT/.cache/qmeter}"
mkdir -p "$OUT"
CORPUS="$("$ROOT/scripts/corpus.sh" "$CACHE/corpus")"
export QMETER_QUICKSTART_CORPUS="$CORPUS"  # calibration text of gptq / awq (training text, not held-out)
echo "== reference model (qmeter train --preset tiny; cached in $CACHE/models)" >&2
export QMETER_QUICKSTART_MODEL="$("$QMETER" train --preset tiny --corpus "$CORPUS" --cache-dir "$CACHE/models" --threads 2)"
echo "== study (qmeter run examples/quickstart.yaml)" >&2
"$QMETER" run "$ROOT/examples/quickstart.yaml" --db "$OUT/results.db" --out "$OUT/runs"
if "$QMETER" report --help >/dev/null 2>&1; then
  "$QMETER" report --db "$OUT/results.db" --study quickstart --output-html "$OUT/report.html"
  echo "report: $OUT/report.html" >&2
fi
