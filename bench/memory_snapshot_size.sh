#!/usr/bin/env bash
# Memory snapshot of a sandbox with 100 MiB of changes (issue: "snapshot
# create time and size"): a busybox sandbox (256 MiB guest) writes 100 MiB
# of random bytes to its disk, then 100 MiB into its RAM (/dev/shm), and a
# memory snapshot is taken after each; the time of `moat snapshot create
# --memory` and the space each file of the snapshot takes (allocated, not
# apparent), then a child's restore checks the RAM's bytes came through.
# Usage: bench/memory_snapshot_size.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: memory_snapshot_size.sh BUILD_DIR}" && pwd)
work=$(mktemp -d /tmp/moat-msize.XXXXXX)
export MOAT_HOME=$work/home
moat=$build/bin/moat
id=$("$moat" run -d --rootfs-dir "$build/share/moat/rootfs-busybox")
trap '"$moat" rm -f "$id" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
us() { echo $(($(date +%s%N) / 1000)); }
sizes() {  # allocated MiB of each file of a snapshot
  local dir=$MOAT_HOME/snapshots/$("$moat" snapshot inspect "$1" | awk -F'"' '/"id"/{print $4; exit}') f
  for f in upper.ext4 memory.ram memory.state; do
    [[ -e $dir/$f ]] && printf "  %-13s %6d MiB allocated\n" "$f" $(($(stat -c %b "$dir/$f") * 512 >> 20))
  done
}
echo "# Memory snapshot with 100 MiB of changes, $(date -u +%Y-%m-%d), $(nproc) cores, TCG, 256 MiB guest"
echo '```'
"$moat" exec "$id" -- sh -c 'dd if=/dev/urandom of=/big bs=1M count=100 2>/dev/null; sync'
s=$(us); "$moat" snapshot create --memory "$id" disk100 >/dev/null; t=$(($(us) - s))
echo "100 MiB written to the disk: snapshot create --memory $((t / 1000)) ms"; sizes disk100
"$moat" exec "$id" -- sh -c 'rm /big; sync; dd if=/dev/urandom of=/dev/shm/big bs=1M count=100 2>/dev/null'
want=$("$moat" exec "$id" -- md5sum /dev/shm/big)
s=$(us); "$moat" snapshot create --memory "$id" ram100 >/dev/null; t=$(($(us) - s))
echo "100 MiB written to RAM:  snapshot create --memory $((t / 1000)) ms"; sizes ram100
s=$(us); child=$("$moat" run -d --from-snapshot ram100); t=$(($(us) - s))
got=$("$moat" exec "$child" -- md5sum /dev/shm/big)
[[ $got == "$want" ]] || { echo "memory_snapshot_size.sh: the child's RAM differs" >&2; exit 1; }
echo "a child of it: run -d --from-snapshot $((t / 1000)) ms, its 100 MiB in RAM byte-exact"
echo '```'
"$moat" rm -f "$child" >/dev/null
"$moat" snapshot rm disk100 ram100 >/dev/null
