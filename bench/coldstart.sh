#!/usr/bin/env bash
# Cold start: wall time of `moat run --rootfs-dir <busybox> -- true` (median of N) side by side
# with the floor: the very QEMU command line moat uses (same kernel, devices and disks) booting
# an init that resets the VM at once, so the difference is what moat itself costs.
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
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }

# Warm the rootfs cache and capture moat's QEMU command line.
"$moat" run --rootfs-dir "$rootfs" -- true
id=$("$moat" run -d --rootfs-dir "$rootfs")
cp "$MOAT_HOME/sandboxes/$id/qemu.cmdline" "$work/qemu.cmdline"
"$moat" rm -f "$id" >/dev/null

# The floor's init: reset at once.
mkdir -p "$work/floor"
gcc -static -Os -s -o "$work/floor/init" "$root/bench/floor/init.c"
(cd "$work/floor" && echo init | cpio --quiet -o -H newc) > "$work/floor.cpio"
truncate -s 4G "$work/upper.img"

mapfile -t cmd < "$work/qemu.cmdline"
floor=()
for ((i = 0; i < ${#cmd[@]}; i++)); do
  a=${cmd[$i]}
  case $a in
    *initramfs.cpio) a=$work/floor.cpio ;;
    socket,id=agent,fd=3) a=null,id=agent ;;
    file,id=console,path=*) a=file,id=console,path=$work/floor-console.log ;;
    *upper.ext4,if=none*) a="file=$work/upper.img,if=none,id=disk1,format=raw" ;;
  esac
  floor+=("$a")
done

moat_times=() floor_times=()
for ((i = 1; i <= runs; i++)); do
  s=$(now); "${floor[@]}" </dev/null >/dev/null 2>&1; e=$(now); floor_times+=($((e - s)))
  s=$(now); "$moat" run --rootfs-dir "$rootfs" -- true; e=$(now); moat_times+=($((e - s)))
done
fm=$(printf '%s\n' "${floor_times[@]}" | median)
mm=$(printf '%s\n' "${moat_times[@]}" | median)
echo "floor (same QEMU command line, init resets at once): median ${fm} s over $runs"
echo "moat run -- true: median ${mm} s over $runs"
awk -v m="$mm" -v f="$fm" 'BEGIN {printf "ratio moat/floor: %.3f\n", m/f}'
