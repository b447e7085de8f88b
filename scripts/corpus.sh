#!/usr/bin/env bash
# Prints the path of qmeter's default training corpus for `qmeter train`, preparing it first:
# the King James Version of the Bible (public domain) from Debian's bible-kjv / bible-kjv-text
# packages (installed by scripts/setup.sh), one verse per line without verse references.
#   MODEL=$(qmeter train --preset tiny --corpus "$(scripts/corpus.sh)" --cache-dir ~/.cache/qmeter/models)
# Output folder: $1, else $QMETER_CACHE_DIR/corpus, else ${XDG_CACHE_HOME:-~/.cache}/qmeter/corpus.
set -euo pipefail
dir="${1:-${QMETER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qmeter}/corpus}"
out="$dir/kjv.txt"
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
if ! command -v bible >/dev/null 2>&1; then
  echo "corpus.sh: the 'bible' program is missing; install the Debian packages bible-kjv and bible-kjv-text" \
       "(scripts/setup.sh does)" >&2
  exit 1
fi
mkdir -p "$dir"
tmp="$out.tmp.$$"
# -f turns pretty-printing off: one "Book1:1 text" line per verse; drop the reference.
bible -f gen1:1-rev22:21 | sed -e 's/^[^ ]* //' > "$tmp"
lines=$(wc -l < "$tmp")
if [ "$lines" -lt 31000 ]; then
  echo "corpus.sh: expected the 31102 verses of the KJV from 'bible', got $lines lines" >&2
  rm -f "$tmp"
  exit 1
fi
mv "$tmp" "$out"
echo "$out"
