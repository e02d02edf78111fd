#!/usr/bin/env bash
# Cold start: wall time of `moat run --cold --rootfs-dir <busybox> -- true` (median of N) side by
# side with the floor: the very QEMU command line moat uses (same kernel, devices and disks)
# booting an init that resets the VM at once, so the difference is what moat itself costs. And
# the warm start (the default: restored from the template the first run left) against both.
# Usage: bench/coldstart.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: coldstart.sh BUILD_DIR [N]}" && pwd)
runs=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
moat=$build/bin/moat
rootfs=$build/share/moat/rootfs-busybox
work=$(mktemp -d /tmp/moat-cold.XXXXXX)
export MOAT_HOME=$work/home
trap 'rm -rf "$work"' EXIT

now() { date +%s%N; }
. "$root/bench/floor/same-cmdline.sh"

# Warm the rootfs cache (and make the warm-start template), and capture the QEMU command line
# of a cold boot.
"$moat" run --rootfs-dir "$rootfs" -- true
id=$("$moat" run -d --cold --rootfs-dir "$rootfs")
cp "$MOAT_HOME/sandboxes/$id/qemu.cmdline" "$work/qemu.cmdline"
cp "$MOAT_HOME/sandboxes/$id/config.json" "$work/config.json"
"$moat" rm -f "$id" >/dev/null

floor_command "$work" "$work/qemu.cmdline" "$work/config.json"
# One checked boot first: a floor that fails at once would otherwise time as fast.
"${floor[@]}" </dev/null >/dev/null 2>"$work/floor.err" || { echo "the floor's QEMU failed:" >&2; cat "$work/floor.err" >&2; exit 1; }

moat_times=() floor_times=() warm_times=()
for ((i = 1; i <= runs; i++)); do
  s=$(now); "${floor[@]}" </dev/null >/dev/null 2>&1; e=$(now); floor_times+=($((e - s)))
  s=$(now); "$moat" run --cold --rootfs-dir "$rootfs" -- true; e=$(now); moat_times+=($((e - s)))
  s=$(now); "$moat" run --rootfs-dir "$rootfs" -- true; e=$(now); warm_times+=($((e - s)))
done
fm=$(printf '%s\n' "${floor_times[@]}" | median)
mm=$(printf '%s\n' "${moat_times[@]}" | median)
wm=$(printf '%s\n' "${warm_times[@]}" | median)
echo "floor (same QEMU command line, init resets at once): median ${fm} s over $runs"
echo "moat run --cold -- true: median ${mm} s over $runs"
echo "moat run -- true (warm start): median ${wm} s over $runs"
awk -v m="$mm" -v f="$fm" -v w="$wm" 'BEGIN {printf "ratio cold/floor: %.3f, warm/floor: %.3f, warm/cold: %.3f\n", m/f, w/f, w/m}'
