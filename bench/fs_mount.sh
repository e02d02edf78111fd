#!/usr/bin/env bash
# FUSE mount benchmark: the same tree through
#   moat     `moat image mount` of the EROFS image (moat's FUSE server)
#   kernel   `mount -t erofs -o loop,ro` of the same image
#   squashfuse  a squashfs of the same tree (mksquashfs -noI -noD -noF -noX,
#               i.e. uncompressed, like the EROFS image) through squashfuse
# Four walks per mount, each timed 5 times (median reported):
#   stat-cold  find -type f | xargs stat, caches dropped (mount remounted and
#              echo 3 > drop_caches) before each run
#   stat-warm  the same, right after a previous run
#   read-cold  every file read (find -type f -exec cat), caches dropped
#   read-warm  the same, warm
# The tree: the Debian + python3 fixture (tests/fixtures/) if its layout is
# cached, otherwise the busybox image (tests/image/make_busybox_oci.py).
# Needs root, and moat-mkerofs and moat in BUILD_DIR/bin.
#
# usage: bench/fs_mount.sh [BUILD_DIR]
# Results are printed and written to bench/results/fs_mount-<date>.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bin=$build/bin
for tool in mksquashfs squashfuse; do
  command -v $tool >/dev/null || { echo "$tool missing (scripts/packages-fs.txt)" >&2; exit 1; }
done
work=$(mktemp -d)
cleanup() {
  for m in "$work"/mnt-*; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

fixture=""
cache=${XDG_CACHE_HOME:-$HOME/.cache}/moat/fixtures
for d in "$cache"/debian-python3-*/layout; do
  [[ -f $d/index.json ]] && { fixture=$d; tag=python3; break; }
done
if [[ -z $fixture ]]; then
  fixture=$work/layout
  tag=latest
  python3 "$root/tests/image/make_busybox_oci.py" "$fixture" "$tag" >/dev/null
  tree_name="busybox (tests/image/make_busybox_oci.py)"
else
  tree_name="Debian bookworm minbase + python3 (tests/fixtures/)"
fi
mapfile -t layers < <(python3 "$root/tests/fs/oci_layers.py" "$fixture" "$tag")
args=()
for l in "${layers[@]}"; do args+=(--layer "$l"); done
"$bin/moat-mkerofs" "${args[@]}" "$work/image.erofs" >/dev/null
mkdir -p "$work/mnt-kernel" "$work/mnt-moat" "$work/mnt-squash"
mount -t erofs -o loop,ro "$work/image.erofs" "$work/mnt-kernel"
mksquashfs "$work/mnt-kernel" "$work/image.sqfs" -noI -noD -noF -noX -no-progress -quiet >/dev/null
umount "$work/mnt-kernel"
files=$(mount -t erofs -o loop,ro "$work/image.erofs" "$work/mnt-kernel" && find "$work/mnt-kernel" -type f | wc -l)
bytes=$(du -sb --apparent-size "$work/mnt-kernel" | cut -f1)
umount "$work/mnt-kernel"

do_mount() {
  case $1 in
    kernel) mount -t erofs -o loop,ro "$work/image.erofs" "$work/mnt-kernel" ;;
    moat) "$bin/moat" image mount "$work/image.erofs" "$work/mnt-moat" ;;
    squash) squashfuse -o allow_other "$work/image.sqfs" "$work/mnt-squash" ;;
  esac
}
do_umount() {
  umount "$work/mnt-$1"
  # Wait for FUSE servers to go away so the next mount starts cold.
  for _ in $(seq 50); do mountpoint -q "$work/mnt-$1" || break; sleep 0.1; done
}
walk() {
  local dir=$1 kind=$2
  if [[ $kind == stat ]]; then
    find "$dir" -type f -print0 | xargs -0 stat -c '%s' >/dev/null
  else
    find "$dir" -type f -print0 | xargs -0 cat >/dev/null
  fi
}
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A result
for fs in kernel moat squash; do
  for kind in stat read; do
    cold=() warm=()
    for _ in 1 2 3 4 5; do
      do_mount $fs
      sync
      echo 3 > /proc/sys/vm/drop_caches
      t0=$(now); walk "$work/mnt-$fs" $kind; t1=$(now)
      walk "$work/mnt-$fs" $kind
      t2=$(now); walk "$work/mnt-$fs" $kind; t3=$(now)
      cold+=("$(echo "$t1 - $t0" | bc -l)")
      warm+=("$(echo "$t3 - $t2" | bc -l)")
      do_umount $fs
    done
    result[$fs,$kind-cold]=$(printf '%s\n' "${cold[@]}" | median)
    result[$fs,$kind-warm]=$(printf '%s\n' "${warm[@]}" | median)
  done
done

out=$root/bench/results/fs_mount-$(date -u +%Y%m%d-%H%M%S).md
{
  echo "# fs_mount: moat FUSE vs kernel EROFS vs squashfuse"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Tree: $tree_name, $files files, $bytes bytes. Median of 5 runs, seconds."
  echo "Cold = page cache and dentries dropped after a fresh mount; warm = third walk of the same mount."
  echo
  echo "| walk | kernel EROFS | moat FUSE | squashfuse | moat / kernel | moat / squashfuse |"
  echo "|---|---|---|---|---|---|"
  for w in stat-cold stat-warm read-cold read-warm; do
    k=${result[kernel,$w]} m=${result[moat,$w]} s=${result[squash,$w]}
    printf '| %s | %.4f | %.4f | %.4f | %.2f | %.2f |\n' "$w" "$k" "$m" "$s" \
      "$(echo "$m / $k" | bc -l)" "$(echo "$m / $s" | bc -l)"
  done
} | tee "$out"
echo "written to $out" >&2
