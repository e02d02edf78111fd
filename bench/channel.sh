#!/usr/bin/env bash
# The agent channel's throughput next to a moat volume's, in one sandbox and
# one run (issue target: each channel path >= 0.5x the volume read).
#
# A 64 MiB random file sits in a host directory that is also the sandbox's
# volume /vol. Each run times, on the host's clock (wall time of the CLI
# call, so each path carries one command's fixed cost, shown as `exec true`):
#   vol read cold   cat /vol/big > /dev/null after dropping the guest's page cache
#   vol read warm   the same again (the guest's page cache)
#   guest write     cat /vol/big > /root/local (warm): what writing the file into the
#                   upper costs the guest with no channel at all, the floor under `cp in`
#   cp in           moat cp FILE ID:/root/big (the overlay's ext4 upper)
#   cp in shm       moat cp FILE ID:/dev/shm/big (tmpfs: no filesystem cost)
#   cp out          moat cp ID:/root/big FILE
#   exec stdout     moat exec ID -- cat /root/big > FILE
# Every copy is checked byte-exact with cmp. MOAT_BENCH_QEMU_ARGS (words)
# are added to the sandbox's QEMU command line, for experiments.
#
# Usage: bench/channel.sh BUILD_DIR [RUNS]    results: bench/results/channel-<date>.md
set -euo pipefail
build=$(cd "${1:?usage: channel.sh BUILD_DIR [RUNS]}" && pwd)
runs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
moat=$build/bin/moat
work=$(mktemp -d /var/tmp/moat-channel.XXXXXX)
export MOAT_HOME=$work/home
id=
cleanup() {
  [ -n "$id" ] && "$moat" rm -f "$id" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

size_mib=64
mkdir -p "$work/vol"
head -c $((size_mib << 20)) /dev/urandom > "$work/vol/big"
id=$("$moat" create --rootfs-dir "$build/share/moat/rootfs-busybox" -v "$work/vol:/vol")
if [ -n "${MOAT_BENCH_QEMU_ARGS:-}" ]; then
  python3 - "$MOAT_HOME/sandboxes/$id/config.json" $MOAT_BENCH_QEMU_ARGS <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["vm"]["extra_qemu_args"] = sys.argv[2:]
json.dump(c, open(path, "w"), indent=2)
PY
fi
"$moat" start "$id" >/dev/null

now() { date +%s%N; }
declare -A times
timed() {  # NAME CMD...: appends the wall time of CMD to times[NAME]
  local name=$1; shift
  local s e
  s=$(now); "$@"; e=$(now)
  times[$name]+="$((e - s)) "
}
drop_caches() { "$moat" exec "$id" -- sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'; }
same() { cmp -s "$1" "$work/vol/big" || { echo "$2 is not byte-exact" >&2; exit 1; }; }

for ((i = 1; i <= runs; i++)); do
  timed "exec true" "$moat" exec "$id" -- true
  drop_caches
  timed "vol read cold" "$moat" exec "$id" -- sh -c 'cat /vol/big > /dev/null'
  timed "vol read warm" "$moat" exec "$id" -- sh -c 'cat /vol/big > /dev/null'
  timed "guest write" "$moat" exec "$id" -- sh -c 'cat /vol/big > /root/local'
  "$moat" exec "$id" -- rm -f /root/local
  "$moat" exec "$id" -- rm -f /root/big /dev/shm/big
  timed "cp in" "$moat" cp "$work/vol/big" "$id:/root/big"
  timed "cp in shm" "$moat" cp "$work/vol/big" "$id:/dev/shm/big"
  # Checked and gone at once: 64 MiB of tmpfs is guest RAM, which would
  # push /root/big out of the 256 MiB guest's page cache for what follows.
  "$moat" exec "$id" -- sh -c 'cmp /dev/shm/big /root/big && rm /dev/shm/big'
  rm -f "$work/back"
  timed "cp out" "$moat" cp "$id:/root/big" "$work/back"
  same "$work/back" "cp in + cp out"
  timed "exec stdout" sh -c "'$moat' exec '$id' -- cat /root/big > '$work/back'"
  same "$work/back" "exec stdout"
done

median_ns() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2)}'; }
declare -A med
for k in "${!times[@]}"; do med[$k]=$(echo "${times[$k]}" | median_ns); done
accel=$("$moat" doctor 2>/dev/null | grep -i -m1 'accel' || true)

mkdir -p "$root/bench/results"
out=$root/bench/results/channel-$(date -u +%Y-%m-%d).md
{
  echo "## Agent channel vs volume, $size_mib MiB ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) cores, $(uname -r), load before the run: $(cut -d' ' -f1-3 /proc/loadavg). ${accel}"
  [ -n "${MOAT_BENCH_QEMU_ARGS:-}" ] && echo "Extra QEMU arguments: \`$MOAT_BENCH_QEMU_ARGS\`"
  echo
  echo "| path | median of $runs (ms) | MiB/s | vs vol read cold | vs vol read warm |"
  echo "|---|---|---|---|---|"
  for k in "exec true" "vol read cold" "vol read warm" "guest write" "cp in" "cp in shm" "cp out" "exec stdout"; do
    awk -v k="$k" -v t="${med[$k]}" -v c="${med[vol read cold]}" -v w="${med[vol read warm]}" -v s="$size_mib" \
      'BEGIN { if (k == "exec true") { printf "| %s | %.0f | | | |\n", k, t/1e6; exit }
               printf "| %s | %.0f | %.0f | %.2fx | %.2fx |\n", k, t/1e6, s/(t/1e9), c/t, w/t }'
  done
  echo
  echo "Raw runs (ns):"
  for k in "${!times[@]}"; do echo "- $k: ${times[$k]}"; done
} >> "$out"
tail -n $((15 + ${#times[@]})) "$out"
