#!/usr/bin/env bash
# virtio-fs end to end: moat's vhost-user-fs device (moat_virtiofs_serve)
# serves an EROFS image built by mkfs.erofs from a tree made here; QEMU
# microvm (TCG unless ACCEL is set) boots the moat guest kernel with a
# busybox initramfs whose /init mounts the share with `mount -t virtiofs`,
# lists every entry with its type, size, sha256 or link target, and reads a
# 256 MiB file once. The guest's listing must equal the host's exactly, the
# device must exit 0 when QEMU goes away; the read rate is printed, not
# asserted.
#
# usage: virtiofs_boot.sh BIN_DIR SHARE_DIR
set -euo pipefail
bin=${1:?usage: virtiofs_boot.sh BIN_DIR SHARE_DIR}
share=${2:?usage: virtiofs_boot.sh BIN_DIR SHARE_DIR}
vmlinux=$share/vmlinux
accel=${ACCEL:-tcg,thread=multi}
busybox=/bin/busybox
for f in "$vmlinux" "$busybox" "$bin/moat_virtiofs_serve"; do
  [[ -e $f ]] || { echo "FAIL: $f missing" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/moat-vfs.XXXXXX")
spid= qpid=
cleanup() {
  [[ -n $qpid ]] && kill "$qpid" 2>/dev/null
  [[ -n $spid ]] && kill "$spid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the shared tree -------------------------------------------------------------------------
t=$work/tree
mkdir -p "$t/dir/sub/deeper" "$t/empty-dir"
printf 'hello over virtio-fs\n' >"$t/hello.txt"
: >"$t/empty"
head -c 300000 /dev/urandom >"$t/dir/random.bin"        # several FUSE reads, not page-aligned
head -c 4096 /dev/urandom >"$t/dir/sub/page"
for i in $(seq 1 200); do echo "line $i" >"$t/dir/sub/deeper/f$i"; done  # a multi-block directory
ln -s ../hello.txt "$t/dir/link"
mkdir -p "$t/name with spaces" && echo spaced >"$t/name with spaces/file"
big_mib=256
head -c $((big_mib << 20)) /dev/zero >"$t/big"
mkfs.erofs --quiet "$work/image.erofs" "$t" >/dev/null

# One listing format for both sides (GNU and busybox tools agree on it).
cat >"$work/list.sh" <<'LIST'
cd "$1"
find . ! -name big | LC_ALL=C sort | while IFS= read -r p; do
  if [ -L "$p" ]; then echo "L $p -> $(readlink "$p")"
  elif [ -d "$p" ]; then echo "D $p"
  else echo "F $p $(stat -c %s "$p") $(sha256sum <"$p" | cut -d' ' -f1)"; fi
done
echo "F ./big $(stat -c %s big)"
LIST
sh "$work/list.sh" "$t" >"$work/host.txt"

# ---- initramfs -------------------------------------------------------------------------------
r=$work/root
mkdir -p "$r"/{bin,proc,sys,dev,mnt}
cp "$busybox" "$r/bin/busybox"
cp "$work/list.sh" "$r/list.sh"
cat >"$r/init" <<EOF2
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if mount -t virtiofs moatfs /mnt; then
  echo VFS-BEGIN
  sh /list.sh /mnt | sed 's/^/VFS /'
  echo VFS-END
  t0=\$(cut -d' ' -f1 /proc/uptime)
  dd if=/mnt/big of=/dev/null bs=1M 2>/dev/null
  t1=\$(cut -d' ' -f1 /proc/uptime)
  echo "VFS-READ $big_mib \$t0 \$t1"
  umount /mnt && echo VFS-UMOUNT-OK
else
  echo VFS-MOUNT-FAILED
fi
reboot -f
EOF2
chmod +x "$r/init"
(cd "$r" && find . | cpio --quiet -o -H newc -R 0:0) >"$work/initrd.cpio"

# ---- device and VM ---------------------------------------------------------------------------
sock=$work/vfs.sock
"$bin/moat_virtiofs_serve" "$sock" "$work/image.erofs" 2>"$work/serve.err" &
spid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || { echo "FAIL: device did not listen"; cat "$work/serve.err"; exit 1; }

mem=512
start=$(date +%s.%N)
timeout "${VFS_TIMEOUT:-240}" qemu-system-x86_64 \
  -M microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem \
  -accel "$accel" -cpu max -m $mem -smp 2 -nodefaults -no-user-config -nographic -no-reboot \
  -object memory-backend-memfd,id=mem,size=${mem}M,share=on \
  -kernel "$vmlinux" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 quiet reboot=t panic=-1" \
  -chardev socket,id=vfs,path="$sock" \
  -device vhost-user-fs-device,chardev=vfs,tag=moatfs \
  -serial "file:$work/console.log" </dev/null >"$work/qemu.out" 2>&1 &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=
src=0
wait "$spid" || src=$?
spid=
end=$(date +%s.%N)

status=0
fail() { echo "FAIL: $*"; status=1; }
tr -d '\r' <"$work/console.log" >"$work/console.txt"
sed -n '/^VFS-BEGIN$/,/^VFS-END$/p' "$work/console.txt" | grep '^VFS ' | sed 's/^VFS //' >"$work/guest.txt" || true
[[ $qrc == 0 ]] || fail "qemu exited $qrc"
grep -q '^VFS-END$' "$work/console.txt" || fail "guest did not finish the listing"
if diff -u "$work/host.txt" "$work/guest.txt"; then
  echo "ok   guest listing equals host listing ($(wc -l <"$work/host.txt") entries)"
else
  fail "guest listing differs (above: - host, + guest)"
fi
grep -q '^VFS-UMOUNT-OK$' "$work/console.txt" || fail "umount in the guest failed"
[[ $src == 0 ]] || fail "moat_virtiofs_serve exited $src: $(cat "$work/serve.err")"
if grep -iE 'panic|BUG:|WARNING:|Oops|virtio_fs.*error' "$work/console.txt"; then
  fail "kernel complained (above)"
fi
read -r _ mib t0 t1 < <(grep '^VFS-READ ' "$work/console.txt" || echo "x 0 0 0")
awk -v m="$mib" -v a="$t0" -v b="$t1" -v acc="$accel" \
  'BEGIN { d = b - a; if (d > 0) printf "measure: sequential read of %d MiB in the guest (%s): %.2f s, %.1f MB/s\n", m, acc, d, m * 1.048576 / d; else print "measure: no read timing" }'
awk -v a="$start" -v b="$end" 'BEGIN { printf "measure: whole run (boot, listing, read, power-off): %.1f s\n", b - a }'
if [[ $status != 0 ]]; then
  echo "---- console"; cat "$work/console.txt"; echo "---- qemu"; cat "$work/qemu.out"
  echo "---- device"; cat "$work/serve.err"
fi
exit $status
