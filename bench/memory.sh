#!/usr/bin/env bash
# Host memory of an idle sandbox: RSS (and PSS) of its shim + QEMU, 256 MiB guest.
# Usage: bench/memory.sh BUILD_DIR [IDLE_SECONDS]
set -euo pipefail
build=$(cd "${1:?usage: memory.sh BUILD_DIR}" && pwd)
idle=${2:-10}
work=$(mktemp -d /tmp/moat-mem.XXXXXX)
export MOAT_HOME=$work/home
trap 'rm -rf "$work"' EXIT
id=$("$build/bin/moat" run -d --memory 256 --rootfs-dir "$build/share/moat/rootfs-busybox")
sleep "$idle"
dir=$MOAT_HOME/sandboxes/$id
total=0 totalpss=0
for pid in $(pgrep -f "$dir"); do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
  pss=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)
  name=$(tr '\0' ' ' < /proc/$pid/cmdline | cut -c1-40)
  echo "pid $pid ($name...): RSS $((rss / 1024)) MiB, PSS $((pss / 1024)) MiB"
  total=$((total + rss)) totalpss=$((totalpss + pss))
done
echo "idle sandbox (shim + QEMU), 256 MiB guest: RSS $((total / 1024)) MiB, PSS $((totalpss / 1024)) MiB"
"$build/bin/moat" rm -f "$id" >/dev/null
