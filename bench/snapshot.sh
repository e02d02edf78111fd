#!/usr/bin/env bash
# Disk snapshots, forks and commit (docs/snapshots.md), side by side:
#   - `moat snapshot create` of a stopped and of a running sandbox holding
#     100 MiB of changes, on the host's filesystem (sparse copy) and on an
#     XFS image with reflink (shared blocks): time and bytes on the host;
#   - `moat fork -n 10`: from the command to ten running sandboxes;
#   - `moat commit` of the Debian test image with the same 100 MiB, against
#     tar+gzip of the same files (what a `podman commit`-style layer costs).
# Usage: bench/snapshot.sh [BUILD] [RUNS]   (root: it mounts the XFS image)
set -euo pipefail
build=${1:-build}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/timing.sh"
moat=$(readlink -f "$build/bin/moat")
work=$(mktemp -d /tmp/moat-bench-snapshot-XXXXXX)
xfs_mnt=$work/xfs
cleanup() {
  for h in "$work/ext4-home" "$xfs_mnt/home"; do
    [[ -d $h ]] && MOAT_HOME=$h "$moat" ls -q 2>/dev/null | xargs -r env MOAT_HOME="$h" "$moat" rm -f >/dev/null 2>&1 || true
  done
  mountpoint -q "$xfs_mnt" && umount "$xfs_mnt"
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$xfs_mnt"
truncate -s 8G "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img"
mount -o loop "$work/xfs.img" "$xfs_mnt"

echo "## Disk snapshots ($(date -u +%Y-%m-%d), $(nproc) cores, TCG)"
echo
echo "100 MiB of random data written in the guest; medians of $runs."
echo
notes=""
echo "| filesystem | snapshot of | create (s) | bytes on the host |"
echo "|---|---|---|---|"
for fs in ext4 xfs-reflink; do
  home=$([[ $fs == ext4 ]] && echo "$work/ext4-home" || echo "$xfs_mnt/home")
  export MOAT_HOME=$home
  "$moat" create --name src >/dev/null
  "$moat" start src >/dev/null
  "$moat" exec src -- sh -c 'dd if=/dev/urandom of=/root/data bs=1M count=100 2>/dev/null; sync'
  for state in running stopped; do
    [[ $state == stopped ]] && "$moat" stop src >/dev/null
    times=()
    for i in $(seq "$runs"); do
      times+=("$(timed "$moat" snapshot create src "s-$state-$i")")
    done
    size=$("$moat" snapshot inspect "s-$state-1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["allocated_bytes"])')
    # Reflinked blocks are shared: the space the filesystem lost is what a copy costs.
    echo "| $fs | a $state sandbox | $(printf '%s\n' "${times[@]}" | median) | $size (allocated; shared blocks when reflinked) |"
  done
  if [[ $fs == xfs-reflink ]]; then
    notes+="XFS used after $((2 * runs)) snapshots of a 100 MiB disk (log and metadata included): $(df -B1M --output=used "$xfs_mnt" | tail -1 | tr -d ' ') MiB"$'\n\n'
  fi
  "$moat" start src >/dev/null
  fork_s=$(timed "$moat" fork src -n 10 --name-prefix "kid-$fs")
  notes+="fork -n 10 on $fs (from the command to ten running sandboxes): ${fork_s} s"$'\n\n'
  "$moat" ls -q | xargs -r "$moat" rm -f >/dev/null
  unset MOAT_HOME
done

echo
printf '%s' "$notes"
layout=$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/moat/fixtures/debian-python3-*/layout 2>/dev/null | head -1 || true)
if [[ -z $layout ]]; then
  echo "commit: no Debian test image cached (run the image tests once); skipped"
  exit 0
fi
export MOAT_HOME=$work/ext4-home
tar -C "$layout" -cf "$work/image.tar" .
ref=$("$moat" image load -i "$work/image.tar" | awk '{print $2}')
"$moat" create --name c --pull never "$ref" >/dev/null
"$moat" start c >/dev/null
"$moat" exec c -- sh -c 'mkdir -p /root/data && dd if=/dev/urandom of=/root/data/blob bs=1M count=100 2>/dev/null; sync'
mkdir -p "$work/copy"
"$moat" cp c:/root/data "$work/copy/"
commit_times=() tar_times=()
for i in $(seq "$runs"); do
  commit_times+=("$(timed "$moat" commit c "local/bench:$i")")
  tar_times+=("$(timed sh -c "tar -C '$work/copy' -cf - . | gzip > '$work/layer.tgz'")")
done
c=$(printf '%s\n' "${commit_times[@]}" | median)
t=$(printf '%s\n' "${tar_times[@]}" | median)
echo "| 100 MiB of changes | time (s) |"
echo "|---|---|"
echo "| moat commit (freeze + copy, layer, gzip, load with root build) | $c |"
echo "| tar + gzip of the same files | $t |"
echo
awk -v c="$c" -v t="$t" 'BEGIN{printf "commit / tar+gzip: %.2f\n", c/t}'
