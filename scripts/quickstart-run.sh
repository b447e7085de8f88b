#!/usr/bin/env bash
# Runs the quickstart with a built qmeter binary ($1).
set -euo pipefail
QMETER="${1:-build/src/cli/qmeter}"
"$QMETER" version
