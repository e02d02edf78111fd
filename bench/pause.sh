#!/usr/bin/env bash
# Pause and resume latency (docs/sandboxes.md): N cycles of `moat pause`,
# `moat resume`, then `moat exec -- true` on a running sandbox (the busybox
# root), each call timed from the CLI's start to its end; p50/p99 of each,
# and `moat exec -- true` on the never-paused sandbox as the reference. A
# counter in the guest checks that the paused VM did not run meanwhile.
# Then N/5 cycles of `moat pause --to-disk` and `moat resume` (a restore
# by a new shim and QEMU) with the first exec after each, against
# `moat run -- true` cold, the size of the saved state, and the counter
# going on after the last restore. Last, a memory snapshot of the sandbox
# and N/5 children restored from it: `moat run -d --from-snapshot` plus the
# first exec, against the same cold run. Then fork -n 10 of the sandbox,
# cold (disk copy, children boot) and warm (--memory: children restore the
# saved VM and map its RAM file private): the total time, each child's
# first exec, and the host PSS per child (QEMU + shim), with the share of
# the RAM file's resident pages the warm children hold in common.
# Usage: bench/pause.sh BUILD_DIR [N]
set -euo pipefail
build=$(cd "${1:?usage: pause.sh BUILD_DIR [N]}" && pwd)
n=${2:-50}
work=$(mktemp -d /tmp/moat-pause.XXXXXX)
export MOAT_HOME=$work/home
moat=$build/bin/moat
id=$("$moat" run -d --rootfs-dir "$build/share/moat/rootfs-busybox")
trap '"$moat" rm -f "$id" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$moat" exec "$id" -- sh -c '(i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done) >/dev/null 2>&1 & echo $! >/tmp/counter.pid'

us() { echo $(($(date +%s%N) / 1000)); }
stats() {
  sort -n | awk -v what="$1" '{a[NR]=$1} END {printf "%-26s n=%d p50=%.1f ms p99=%.1f ms\n", what, NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000}'
}
: >"$work/pause" >"$work/resume" >"$work/exec_after" >"$work/exec_ref"
for ((i = 0; i < n; i++)); do
  s=$(us); "$moat" exec "$id" -- true; echo $(($(us) - s)) >>"$work/exec_ref"
  s=$(us); "$moat" pause "$id" >/dev/null; echo $(($(us) - s)) >>"$work/pause"
  before=$(cat "$MOAT_HOME/sandboxes/$id/paused" >/dev/null 2>&1 && echo paused)
  [[ $before == paused ]] || { echo "pause.sh: no paused marker after moat pause" >&2; exit 1; }
  s=$(us); "$moat" resume "$id" >/dev/null; echo $(($(us) - s)) >>"$work/resume"
  s=$(us); "$moat" exec "$id" -- true; echo $(($(us) - s)) >>"$work/exec_after"
done
echo "# Pause and resume, $(date -u +%Y-%m-%d), $(nproc) cores, TCG, $n cycles"
echo '```'
stats "moat pause" <"$work/pause"
stats "moat resume" <"$work/resume"
stats "exec true after resume" <"$work/exec_after"
stats "exec true (reference)" <"$work/exec_ref"
echo '```'
# The guest's counter went on after the last resume.
a=$("$moat" exec "$id" -- cat /tmp/n); sleep 0.5; b=$("$moat" exec "$id" -- cat /tmp/n)
((b > a)) || { echo "pause.sh: the guest's counter did not go on after resume ($a, $b)" >&2; exit 1; }

# Pause to disk and restore.
m=$(( n / 5 > 0 ? n / 5 : 1 ))
: >"$work/save" >"$work/restore" >"$work/exec_restored" >"$work/cold"
size=0
for ((i = 0; i < m; i++)); do
  s=$(us); "$moat" pause --to-disk "$id" >/dev/null; echo $(($(us) - s)) >>"$work/save"
  size=$(stat -c %s "$MOAT_HOME/sandboxes/$id/memory.state")
  s=$(us); "$moat" resume "$id" >/dev/null; echo $(($(us) - s)) >>"$work/restore"
  s=$(us); "$moat" exec "$id" -- true; echo $(($(us) - s)) >>"$work/exec_restored"
  s=$(us); "$moat" run --cold --rootfs-dir "$build/share/moat/rootfs-busybox" -- true; echo $(($(us) - s)) >>"$work/cold"
done
echo
echo "# Pause to disk and restore, $m cycles (state file $((size >> 20)) MiB, 256 MiB guest)"
echo '```'
stats "moat pause --to-disk" <"$work/save"
stats "moat resume (restore)" <"$work/restore"
stats "first exec true after it" <"$work/exec_restored"
stats "moat run -- true (cold)" <"$work/cold"
echo '```'
a=$("$moat" exec "$id" -- cat /tmp/n); sleep 0.5; b=$("$moat" exec "$id" -- cat /tmp/n)
((b > a)) || { echo "pause.sh: the guest's counter did not go on after the restore ($a, $b)" >&2; exit 1; }

# Children of a memory snapshot.
s=$(us); "$moat" snapshot create --memory "$id" bench-mem >/dev/null; snap_us=$(($(us) - s))
: >"$work/child" >"$work/child_exec"
for ((i = 0; i < m; i++)); do
  s=$(us); child=$("$moat" run -d --from-snapshot bench-mem); echo $(($(us) - s)) >>"$work/child"
  s=$(us); "$moat" exec "$child" -- true; echo $(($(us) - s)) >>"$work/child_exec"
  "$moat" rm -f "$child" >/dev/null
done
"$moat" snapshot rm bench-mem >/dev/null
echo
echo "# Memory snapshot ($((snap_us / 1000)) ms to take) and $m children restored from it"
echo '```'
stats "run -d --from-snapshot" <"$work/child"
stats "first exec true in a child" <"$work/child_exec"
echo '```'

# fork -n 10, cold and warm, of the sandbox without its counter (ten
# restored counters would load the machine, where booted children have none).
"$moat" exec "$id" -- sh -c 'kill $(cat /tmp/counter.pid)'
kids=10
pss_kb() {  # QEMU + shim of one sandbox, in KiB
  local dir=$MOAT_HOME/sandboxes/$1 total=0 pid
  for pid in $(cat "$dir/shim.pid") $(pgrep -f "qemu-system.* -name $dir "); do
    total=$((total + $(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")))
  done
  echo "$total"
}
ram_share() {  # "RSS SHARED" KiB of a warm child's mapping of the RAM file
  local dir=$MOAT_HOME/sandboxes/$1 pid
  pid=$(pgrep -f "qemu-system.* -name $dir ")
  awk '/ \/ram( \(deleted\))?$/{f=1;next} /^[0-9a-f]+-[0-9a-f]+ /{f=0} f&&/^Rss:/{r+=$2} f&&$1 ~ /^Shared_/{s+=$2} END{print r+0, s+0}' "/proc/$pid/smaps"
}
for mode in cold warm; do
  flags=(); [[ $mode == warm ]] && flags=(--memory)
  s=$(us); "$moat" fork "${flags[@]}" "$id" -n $kids --name-prefix "bf-$mode" >/dev/null; fork_us=$(($(us) - s))
  : >"$work/fork_exec" >"$work/fork_pss"
  rss=0 shared=0
  for ((i = 1; i <= kids; i++)); do
    child=$("$moat" inspect "bf-$mode-$i" | awk -F'"' '/"id"/{print $4; exit}')
    s=$(us); "$moat" exec "$child" -- true; echo $(($(us) - s)) >>"$work/fork_exec"
  done
  sleep 2
  for ((i = 1; i <= kids; i++)); do
    child=$("$moat" inspect "bf-$mode-$i" | awk -F'"' '/"id"/{print $4; exit}')
    pss_kb "$child" >>"$work/fork_pss"
    if [[ $mode == warm ]]; then read -r r sh < <(ram_share "$child"); rss=$((rss + r)); shared=$((shared + sh)); fi
  done
  echo
  echo "# fork -n $kids, $mode: $((fork_us / 1000)) ms in all"
  echo '```'
  stats "first exec true in a child" <"$work/fork_exec"
  sort -n "$work/fork_pss" | awk '{a[NR]=$1} END {printf "%-26s n=%d p50=%.1f MiB\n", "PSS per child (QEMU+shim)", NR, a[int(NR*0.5)+1]/1024}'
  if [[ $mode == warm ]]; then
    echo "RAM file resident in the children: $((rss / 1024)) MiB, of which shared $((shared / 1024)) MiB ($((shared * 100 / (rss > 0 ? rss : 1)))%)"
  fi
  echo '```'
  for ((i = 1; i <= kids; i++)); do "$moat" rm -f "bf-$mode-$i" >/dev/null; done
done
