#!/usr/bin/env bash
# Installs every Debian package qmeter needs to build, test and run its quickstart.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(
  cmake ninja-build g++ ccache pkg-config
  libcurl4-openssl-dev libboost-dev nlohmann-json3-dev
  libyaml-cpp-dev libsqlite3-dev sqlite3 libcli11-dev libfmt-dev
  libpcre2-dev libsentencepiece-dev libgtest-dev libgmock-dev libbenchmark-dev
  libomp-dev openssl ca-certificates
  chromium bible-kjv bible-kjv-text
  slurmctld slurmd slurm-client munge
  # clang + libFuzzer (fuzz targets, -DQMETER_FUZZ=ON) and /usr/bin/time (bench/fuzz/run.sh)
  clang-14 libclang-rt-14-dev time
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm (for the report's chart libraries): Debian's, unless a node with npm is already here.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm folders, each pinned by its package-lock.json (installed again only when the lock is newer):
# src/report/web: the report's chart libraries (vega, vega-lite, vega-embed), inlined into every
#   report at build time so reports work offline;
# tests/llamacpp: llama.cpp's own CPU shared libraries (the @node-llama-cpp/linux-x64 prebuilt),
#   the ground truth the tests/llamacpp tests check qmeter's GGUF files against.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
for NPM_DIR in "$ROOT/src/report/web" "$ROOT/tests/llamacpp"; do
  if [ ! -f "$NPM_DIR/node_modules/.package-lock.json" ] || [ "$NPM_DIR/package-lock.json" -nt "$NPM_DIR/node_modules/.package-lock.json" ]; then
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
