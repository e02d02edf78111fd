#!/usr/bin/env bash
# Sandboxes from an image, and density.
#   1. `moat run <debian+python3> -- python3 -c pass` (median of N, pulled
#      from a local registry beforehand) next to the cold-start floor: the
#      QEMU command line moat uses for that sandbox, booting an init that
#      resets at once (see coldstart.sh).
#   2. Density: COUNT idle sandboxes of 256 MiB started at once (`run -d`);
#      the time until all run, and host RSS/PSS per sandbox (shim + QEMU).
# Usage: bench/sandbox.sh BUILD_DIR [N] [COUNT]
set -euo pipefail
build=$(cd "${1:?usage: sandbox.sh BUILD_DIR [N] [COUNT]}" && pwd)
runs=${2:-10}
count=${3:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
moat=$build/bin/moat
work=$(mktemp -d /tmp/moat-sbx.XXXXXX)
export MOAT_HOME=$work/home
reg=$work/registry
cleanup() {
  "$moat" ls -q 2>/dev/null | xargs -r "$moat" rm -f >/dev/null 2>&1 || true
  "$root/tests/fixtures/local-registry.sh" stop "$reg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }
. "$root/bench/floor/same-cmdline.sh"

layout=$("$root/tests/fixtures/make-debian-python.sh")
"$root/tests/fixtures/local-registry.sh" start "$reg" >/dev/null
ref=$("$root/tests/fixtures/local-registry.sh" push "$reg" "$layout" python3 bench/debian-python3)
"$moat" image pull -q --insecure "$ref" >/dev/null

# The floor: this sandbox's own QEMU command line with a resetting init.
id=$("$moat" run -d --cold --insecure "$ref")
cp "$MOAT_HOME/sandboxes/$id/qemu.cmdline" "$work/qemu.cmdline"
cp "$MOAT_HOME/sandboxes/$id/config.json" "$work/config.json"
"$moat" rm -f "$id" >/dev/null
floor_command "$work" "$work/qemu.cmdline" "$work/config.json"
# One checked boot first: a floor that fails at once would otherwise time as fast.
"${floor[@]}" </dev/null >/dev/null 2>"$work/floor.err" || { echo "the floor's QEMU failed:" >&2; cat "$work/floor.err" >&2; exit 1; }

moat_times=() floor_times=()
for ((i = 1; i <= runs; i++)); do
  s=$(now); "${floor[@]}" </dev/null >/dev/null 2>&1; e=$(now); floor_times+=($((e - s)))
  s=$(now); "$moat" run --cold --insecure "$ref" -- python3 -c pass; e=$(now); moat_times+=($((e - s)))
done
fm=$(printf '%s\n' "${floor_times[@]}" | median)
mm=$(printf '%s\n' "${moat_times[@]}" | median)
echo "floor (same QEMU command line, init resets at once): median ${fm} s over $runs"
echo "moat run <debian+python3> -- python3 -c pass: median ${mm} s over $runs"
awk -v m="$mm" -v f="$fm" 'BEGIN {printf "ratio moat/floor: %.3f\n", m/f}'

# Density.
rootfs=$build/share/moat/rootfs-busybox
"$moat" run --rootfs-dir "$rootfs" -- true  # warm the root cache
s=$(now)
for ((i = 0; i < count; i++)); do
  "$moat" run -d --memory 256 --name "dense-$i" --rootfs-dir "$rootfs" >/dev/null &
done
wait
e=$(now)
running=$("$moat" ls --format json | grep -c '"state": "running"' || true)
awk -v t=$((e - s)) -v n="$count" -v r="$running" \
  'BEGIN {printf "density: %d sandboxes started at once, all running after %.2f s (%d running)\n", n, t/1e9, r}'
sleep 10
total=0 totalpss=0
for pid in $(pgrep -f "$MOAT_HOME/sandboxes/"); do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  pss=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup 2>/dev/null || echo 0)
  total=$((total + rss)) totalpss=$((totalpss + pss))
done
awk -v t="$total" -v p="$totalpss" -v n="$count" \
  'BEGIN {printf "density: host RSS per idle sandbox %.1f MiB, PSS %.1f MiB (total RSS %.0f MiB)\n", t/n/1024, p/n/1024, t/1024}'
