#!/usr/bin/env bash
# Fails when a process started by the test suite is still running: anything executing from this
# checkout's build folders (servers, mock servers, qmeter itself) or a daemon of a private test
# Slurm cluster. Run at the end of the README test command; prints each leftover with its pid.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
self=$$
left=0
# The private Slurm clusters of this checkout's build folders (tests/slurm/CMakeLists.txt names
# them /tmp/qmeter-slurm-<first 10 hex digits of the MD5 of the build folder's path>).
slurm_dirs=()
for b in "$root"/build*; do
  [ -d "$b" ] && slurm_dirs+=("/tmp/qmeter-slurm-$(printf '%s' "$b" | md5sum | cut -c1-10)")
done
for d in /proc/[0-9]*; do
  pid="${d#/proc/}"
  [ "$pid" = "$self" ] && continue
  exe="$(readlink "$d/exe" 2>/dev/null)" || continue
  cmd="$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)"
  state="$(awk '{print $3}' "$d/stat" 2>/dev/null)"
  [ "$state" = "Z" ] && continue
  ours=0
  case "$exe" in "$root"/build*) ours=1 ;; esac
  for s in "${slurm_dirs[@]}"; do
    case "$cmd" in *"$s"*) ours=1 ;; esac
  done
  [ "$ours" = 1 ] || continue
  echo "leftover process $pid: $cmd" >&2
  left=$((left + 1))
done
if [ "$left" -gt 0 ]; then
  echo "qmeter: $left process(es) started by the tests are still running" >&2
  exit 1
fi
echo "qmeter: no process started by the tests is left running"
