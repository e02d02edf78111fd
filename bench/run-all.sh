#!/usr/bin/env bash
# Runs every benchmark of the boot path and prints a report (copy it into bench/results/).
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
echo "# moat benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, accel: $("$build/bin/moat" doctor | awk '/^accelerator/ {print $2}')"
"$here/coldstart.sh" "$build" "${COLD_RUNS:-10}"
"$build/bin/moat_bench_exec" "${EXEC_RUNS:-200}" "$build/share/moat/rootfs-busybox"
"$here/exec_cli.sh" "$build" "${EXEC_RUNS:-200}"
"$here/memory.sh" "$build" 10
