#!/usr/bin/env bash
# moat cp throughput: wall time of copying a 100 MiB random file into a running sandbox and back
# out (median of N each), checked byte-exact by sha256. Results go to bench/results/cp-<date>.md.
# Usage: bench/cp.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: cp.sh BUILD_DIR [N]}" && pwd)
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
moat=$build/bin/moat
rootfs=$build/share/moat/rootfs-busybox
work=$(mktemp -d /tmp/moat-cp.XXXXXX)
export MOAT_HOME=$work/home
id=
cleanup() {
  [ -n "$id" ] && { "$moat" stop "$id" >/dev/null 2>&1; "$moat" rm -f "$id" >/dev/null 2>&1; } || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m/1e9}'; }

head -c $((100 << 20)) /dev/urandom > "$work/big"
want=$(sha256sum "$work/big" | cut -d' ' -f1)
id=$("$moat" create --rootfs-dir "$rootfs")
"$moat" start "$id" >/dev/null
"$moat" exec "$id" -- mkdir -p /data

in_times=() out_times=()
for ((i = 1; i <= runs; i++)); do
  s=$(now); "$moat" cp "$work/big" "$id:/data/big"; e=$(now); in_times+=($((e - s)))
  got=$("$moat" exec "$id" -- sha256sum /data/big | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "copy in is not byte-exact" >&2; exit 1; }
  rm -f "$work/back"
  s=$(now); "$moat" cp "$id:/data/big" "$work/back"; e=$(now); out_times+=($((e - s)))
  [ "$(sha256sum "$work/back" | cut -d' ' -f1)" = "$want" ] || { echo "copy out is not byte-exact" >&2; exit 1; }
done
im=$(printf '%s\n' "${in_times[@]}" | median)
om=$(printf '%s\n' "${out_times[@]}" | median)
accel=$("$moat" doctor 2>/dev/null | grep -i -m1 'accel' || true)

mkdir -p "$root/bench/results"
out=$root/bench/results/cp-$(date -u +%Y-%m-%d).md
{
  echo "# moat cp, 100 MiB random file ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) cores, $(uname -r). ${accel}"
  echo
  echo "| direction | median of $runs (s) | MiB/s |"
  echo "|---|---|---|"
  echo "| host → guest (\`moat cp FILE ID:/data/big\`) | $im | $(awk -v t="$im" 'BEGIN{printf "%.1f", 100/t}') |"
  echo "| guest → host (\`moat cp ID:/data/big FILE\`) | $om | $(awk -v t="$om" 'BEGIN{printf "%.1f", 100/t}') |"
  echo
  echo "Each run's copy is checked byte-exact with sha256. Raw runs (ns): in ${in_times[*]}; out ${out_times[*]}."
} > "$out"
cat "$out"
