#!/usr/bin/env bash
# Builds the default root filesystem tree from Debian's busybox-static:
# /bin/busybox plus one symlink per applet, and the few files a shell expects.
# Usage: make-busybox-rootfs.sh OUTDIR
set -euo pipefail
out=${1:?usage: make-busybox-rootfs.sh OUTDIR}
busybox=/bin/busybox
[[ -x $busybox ]] || { echo "make-busybox-rootfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

tmp=$(mktemp -d "${out%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run,var/tmp,home}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 0700 "$tmp/root"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list-full); do
  [[ $applet == bin/busybox ]] && continue
  [[ -e $tmp/$applet ]] || ln -s /bin/busybox "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
echo "moat" > "$tmp/etc/hostname"
: > "$tmp/etc/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$tmp/etc/hosts"
# A fixed mtime keeps the tree's content hash (and so the cached ext4) stable.
find "$tmp" -exec touch -h -d @0 {} +
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
