#!/usr/bin/env bash
# Runs every benchmark (boot path, exec, memory, image pull) and prints a report (copy it into
# bench/results/; pull.sh writes its own file there).
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
echo "# moat benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, accel: $("$build/bin/moat" doctor | awk '/^accelerator/ {print $2}')"
"$here/coldstart.sh" "$build" "${COLD_RUNS:-10}"
"$build/bin/moat_bench_exec" "${EXEC_RUNS:-200}" "$build/share/moat/rootfs-busybox"
"$here/exec_cli.sh" "$build" "${EXEC_RUNS:-200}"
"$here/memory.sh" "$build" 10
"$here/channel.sh" "$build" "${CHANNEL_RUNS:-5}"   # writes bench/results/channel-<date>.md
"$here/pull.sh" "$build" "${PULL_RUNS:-5}"   # writes bench/results/pull-<date>.md
"$here/sandbox.sh" "$build" "${COLD_RUNS:-10}" "${DENSITY:-20}"
"$here/e2b.sh" "$build" "${E2B_RUNS:-100}" "${E2B_CREATES:-20}" 1   # the E2B API against moat's Node SDK
"$here/pause.sh" "$build" "${PAUSE_RUNS:-50}"   # pause and resume latency
