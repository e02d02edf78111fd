#!/usr/bin/env bash
# Exec round trip through the CLI: N sequential `moat exec ID -- true`, p50/p99.
# Usage: bench/exec_cli.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: exec_cli.sh BUILD_DIR [N]}" && pwd)
n=${2:-200}
work=$(mktemp -d /tmp/moat-exec.XXXXXX)
export MOAT_HOME=$work/home
trap 'rm -rf "$work"' EXIT
id=$("$build/bin/moat" run -d --rootfs-dir "$build/share/moat/rootfs-busybox")
for ((i = 0; i < n; i++)); do
  s=$(date +%s%N); "$build/bin/moat" exec "$id" -- true; e=$(date +%s%N)
  echo $(((e - s) / 1000))
done | sort -n | awk '{a[NR]=$1} END {printf "cli exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000}'
"$build/bin/moat" rm -f "$id" >/dev/null
