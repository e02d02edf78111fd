#!/usr/bin/env bash
# Cold-start floor: time N boots of the guest kernel with an initramfs whose /init reboots
# immediately. This is the lowest wall time any moat sandbox start can reach on this host.
#
# Usage: bench/floor/run.sh [VMLINUX] [N]
#   VMLINUX  default: output of kernel/build.sh --print-path (must already be built)
#   N        number of boots, default 10 (or $FLOOR_RUNS)
# Env: QEMU (default qemu-system-x86_64), FLOOR_APPEND_EXTRA (appended to the kernel command
#      line, e.g. "initcall_debug" while tuning), FLOOR_KEEP_LOG=1 keeps the console logs.
# Output: one line per boot with its wall time, then "median <s>" as the last line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

vmlinux=${1:-}
if [[ -z $vmlinux ]]; then
  vmlinux=$("$root/kernel/build.sh" --print-path) || {
    echo "floor: no cached kernel at $vmlinux; run kernel/build.sh first" >&2
    exit 1
  }
fi
[[ -f $vmlinux ]] || { echo "floor: $vmlinux: no such file" >&2; exit 1; }
runs=${2:-${FLOOR_RUNS:-10}}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "floor: N must be a positive integer" >&2; exit 1; }
qemu=${QEMU:-qemu-system-x86_64}

work=$(mktemp -d "${TMPDIR:-/tmp}/moat-floor.XXXXXX")
cleanup() { [[ ${FLOOR_KEEP_LOG:-0} == 1 ]] && echo "floor: logs kept in $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT

# Build the init and pack it as the only file of an uncompressed newc initramfs.
mkdir -p "$work/root"
gcc -static -Os -s -o "$work/root/init" "$here/init.c"
(cd "$work/root" && echo init | cpio --quiet -o -H newc -R 0:0) > "$work/initrd.cpio"

append="console=ttyS0 quiet reboot=t panic=-1${FLOOR_APPEND_EXTRA:+ $FLOOR_APPEND_EXTRA}"
times=()
for ((i = 1; i <= runs; i++)); do
  log="$work/console.$i.log"
  start=$(date +%s%N)
  rc=0
  "$qemu" -M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on \
    -accel tcg,thread=multi -cpu max -m 256 -smp 1 \
    -nodefaults -no-user-config -nographic -no-reboot \
    -kernel "$vmlinux" -initrd "$work/initrd.cpio" \
    -append "$append" \
    -serial "file:$log" </dev/null >"$work/qemu.$i.out" 2>&1 || rc=$?
  end=$(date +%s%N)
  if ((rc != 0)); then
    echo "floor: run $i: qemu exited with $rc" >&2
    cat "$work/qemu.$i.out" "$log" >&2 || true
    exit 1
  fi
  if grep -q "Kernel panic" "$log"; then
    echo "floor: run $i: kernel panic (init did not reboot cleanly):" >&2
    cat "$log" >&2
    exit 1
  fi
  t=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.3f", ns / 1e9 }')
  times+=("$t")
  echo "run $i $t"
done

printf '%s\n' "${times[@]}" | sort -n | awk '
  { v[NR] = $1 }
  END {
    if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "min %.3f max %.3f\nmedian %.3f\n", v[1], v[NR], m
  }'
