#!/usr/bin/env bash
# Feature check of a guest kernel: boots it on QEMU microvm (TCG unless ACCEL=kvm) with a
# busybox-static initramfs and the devices moat uses, and checks from inside the guest that
# everything later work relies on is there. Prints one "ok"/"FAIL" line per check.
#
# Usage: kernel/check.sh [VMLINUX]     (default: kernel/build.sh --print-path)
# Exit status: 0 if every check passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vmlinux=${1:-$("$here/build.sh" --print-path)} || { echo "check: kernel not built" >&2; exit 1; }
[[ -f $vmlinux ]] || { echo "check: $vmlinux: no such file" >&2; exit 1; }
busybox=/bin/busybox
[[ -x $busybox ]] || { echo "check: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
accel=${ACCEL:-tcg,thread=multi}

work=$(mktemp -d "${TMPDIR:-/tmp}/moat-kcheck.XXXXXX")
qpid=
cleanup() { [[ -n $qpid ]] && kill "$qpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# ---- initramfs -------------------------------------------------------------------------------
r="$work/root"
mkdir -p "$r"/{bin,proc,sys,dev,tmp,mnt/blk,mnt/ovl,mnt/lower,mnt/up}
cp "$busybox" "$r/bin/busybox"
ln -s busybox "$r/bin/sh"
cat >"$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts -o ptmxmode=0666,newinstance devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null || true
check() { # name, command...
  name=$1; shift
  if out=$("$@" 2>&1); then echo "CHECK ok   $name${out:+: $out}"; else echo "CHECK FAIL $name${out:+: $out}"; fi
}
fs() { grep -qw "$1" /proc/filesystems && echo present; }
for f in erofs overlay ext4 fuse virtiofs tmpfs devtmpfs cgroup2 devpts; do check "fs $f" fs $f; done
check "nproc == 2" sh -c '[ "$(nproc)" = 2 ] && nproc'
check "virtio-ports name" sh -c 'for p in /sys/class/virtio-ports/vport*; do n=$(cat $p/name); [ "$n" = agent ] && { echo "$p=$n"; exit 0; }; done; exit 1'
check "/dev/vport*" sh -c 'ls /dev/vport* | tr "\n" " "; [ -c "$(ls /dev/vport* | head -n1)" ]'
check "agent port writable" sh -c 'for p in /sys/class/virtio-ports/vport*; do [ "$(cat $p/name)" = agent ] && { echo hello-from-guest > /dev/${p##*/}; exit $?; }; done; exit 1'
check "/dev/vda" sh -c '[ -b /dev/vda ] && cat /sys/block/vda/size'
check "ext4 on vda" sh -c 'mount -t ext4 /dev/vda /mnt/blk && echo x > /mnt/blk/f && cat /mnt/blk/marker && umount /mnt/blk'
check "/dev/ptmx" sh -c 'exec 3<>/dev/ptmx && ls /dev/pts | tr "\n" " "'
check "overlay(tmpfs)" sh -c 'mount -t tmpfs t /mnt/up && mkdir -p /mnt/up/u /mnt/up/w && echo low > /mnt/lower/a &&
  mount -t overlay o -o lowerdir=/mnt/lower,upperdir=/mnt/up/u,workdir=/mnt/up/w /mnt/ovl && cat /mnt/ovl/a'
check "cgroup2 controllers" sh -c 'mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && c=$(cat /sys/fs/cgroup/cgroup.controllers) && echo "$c" &&
  for x in cpu io memory pids; do echo " $c " | grep -q " $x " || exit 1; done'
check "namespaces" sh -c 'ls /proc/self/ns | tr "\n" " "; unshare -U -p -n -i -u -m -f -r true'
check "seccomp" sh -c 'grep -E "^Seccomp(_filters)?:" /proc/self/status | tr "\n" " "; grep -q Seccomp_filters /proc/self/status'
check "hwrng" sh -c 'cat /sys/class/misc/hw_random/rng_current; grep -q virtio /sys/class/misc/hw_random/rng_current'
check "ipv6 lo" sh -c 'ip link set lo up && ip -6 addr show lo | grep -q ::1 && echo ::1'
check "ip_tables nat" sh -c 'ls /proc/net/ | grep -E "ip_tables|ip6_tables|nf_conntrack" | tr "\n" " "; [ -e /proc/net/ip_tables_targets ] && grep -q REDIRECT /proc/net/ip_tables_targets'
check "ip6_tables REDIRECT" sh -c 'grep -q REDIRECT /proc/net/ip6_tables_targets && echo yes'
check "modules off" sh -c '[ ! -e /proc/modules ] && echo yes'
echo "CHECK done"
# No ACPI: power-off would just halt; reboot (+ -no-reboot on the host) ends the VM.
reboot -f
EOF
chmod +x "$r/init"
(cd "$r" && find . | cpio --quiet -o -H newc -R 0:0) >"$work/initrd.cpio"

# ---- block device: small ext4 with a marker file ---------------------------------------------
img="$work/disk.img"
mkdir -p "$work/disk"
echo marker-ok >"$work/disk/marker"
truncate -s 16M "$img"
mkfs.ext4 -q -F -d "$work/disk" "$img"

sock="$work/agent.sock"
timeout "${CHECK_TIMEOUT:-120}" qemu-system-x86_64 \
  -M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on -accel "$accel" -cpu max \
  -m 256 -smp 2 -nodefaults -no-user-config -nographic -no-reboot \
  -kernel "$vmlinux" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 quiet reboot=t panic=-1" \
  -device virtio-serial-device \
  -chardev socket,id=agent,path="$sock",server=on,wait=off \
  -device virtserialport,chardev=agent,name=agent \
  -drive file="$img",if=none,id=d0,format=raw -device virtio-blk-device,drive=d0 \
  -device virtio-rng-device \
  -serial "file:$work/console.log" </dev/null >"$work/qemu.out" 2>&1 &
qpid=$!
# Read what the guest writes to the agent port (proves the host side of the channel works).
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(100)
buf = b""
while b"\n" not in buf:
    d = s.recv(4096)
    if not d: break
    buf += d
open(sys.argv[2], "wb").write(buf)' "$sock" "$work/agent.out" 2>/dev/null &
rpid=$!
rc=0
wait "$qpid" || rc=$?
qpid=
wait "$rpid" 2>/dev/null || true

grep '^CHECK' "$work/console.log" | sed 's/^CHECK //' | grep -v '^done$' || true
status=0
grep -q '^CHECK done' "$work/console.log" || { echo "FAIL guest did not finish (qemu rc=$rc):"; cat "$work/qemu.out" "$work/console.log"; status=1; }
grep -q '^CHECK FAIL' "$work/console.log" && status=1
if grep -q hello-from-guest "$work/agent.out" 2>/dev/null; then
  echo "ok   host received agent port data"
else
  echo "FAIL host did not receive agent port data"; status=1
fi
grep -iE 'panic|BUG:|WARNING:|Oops' "$work/console.log" && { echo "FAIL kernel complained (above)"; status=1; }
exit $status
