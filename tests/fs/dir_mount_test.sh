#!/usr/bin/env bash
# The directory backend through the real kernel: moat_fs_dir_mount serves a
# host directory on /dev/fuse, and ordinary tools work on the mount while the
# host side is checked: contents (sha256 of a 50 MiB random file, copied in
# and copied again inside the mount), a deep tree, ownership kept in the
# user.moat.stat xattr while host files stay the server's, a character
# device that is a regular host file, symlinks that never lead out of the
# directory, a read-only mount refusing every change, and rm -rf.
#
# Symlinks are resolved by the client kernel in its own root (in a sandbox,
# the guest's), so the escape checks run the client chrooted into the mount:
# "/" is then the served directory, as it is for any path the server sees.
#
# Needs root, /dev/fuse and a static busybox (package busybox-static).
# usage: dir_mount_test.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: dir_mount_test.sh BIN_DIR}
work=$(mktemp -d /tmp/moat-dir-mount-XXXXXX)
root=$work/root
mnt=$work/mnt
ro=$work/ro
cleanup() {
  for m in "$mnt" "$ro"; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
umask 022
export LC_ALL=C  # plain quotes in messages
mkdir -p "$root" "$mnt" "$ro"
chmod 755 "$work"  # uid 1000 creates files below

fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect WHAT ACTUAL EXPECTED
  [[ $2 == "$3" ]] || fail "$1: got '$2', expected '$3'"
}

"$bin/moat_fs_dir_mount" "$root" "$mnt"
expect "mount type" "$(awk -v m="$mnt" '$2 == m {print $3}' /proc/mounts)" "fuse.moat"

echo "== contents"
head -c $((50 << 20)) /dev/urandom > "$work/big"
cp "$work/big" "$mnt/big"
want=$(sha256sum < "$work/big")
expect "sha256 on the host" "$(sha256sum < "$root/big")" "$want"
expect "sha256 on the mount" "$(sha256sum < "$mnt/big")" "$want"
cp "$mnt/big" "$mnt/big2"  # copy_file_range inside the mount
expect "sha256 of the copy" "$(sha256sum < "$root/big2")" "$want"
expect "size" "$(stat -c %s "$mnt/big2")" "52428800"
printf 'hello\n' > "$mnt/small"
printf 'more\n' >> "$mnt/small"
expect "append" "$(cat "$root/small")" "hello
more"
mv "$mnt/small" "$mnt/renamed"
ln "$mnt/renamed" "$mnt/hardlink"
expect "hard link" "$(stat -c '%h %i' "$mnt/renamed")" "$(stat -c '%h %i' "$mnt/hardlink")"
expect "host link count" "$(stat -c %h "$root/renamed")" "2"
truncate -s 3 "$mnt/renamed"
expect "truncate" "$(cat "$root/hardlink")" "hel"
fallocate -l 1M "$mnt/alloc"
expect "fallocate" "$(stat -c %s "$root/alloc")" "1048576"

echo "== deep tree"
mkdir -p "$mnt/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"
echo deep > "$mnt/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/file"
expect "directories on the mount" "$(find "$mnt/a" -type d | wc -l)" "16"
expect "directories on the host" "$(find "$root/a" -type d | wc -l)" "16"
expect "deep file" "$(cat "$root/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/file")" "deep"

echo "== ownership"
chown 1000:1000 "$mnt/big"
expect "owner on the mount" "$(stat -c '%u:%g' "$mnt/big")" "1000:1000"
expect "owner on the host" "$(stat -c '%u:%g' "$root/big")" "0:0"
# version 1, uid 1000, gid 1000, mode 0100644, rdev 0 (little-endian)
expect "xattr on the host" "$(getfattr --absolute-names --only-values -e hex -n user.moat.stat "$root/big" | od -An -tx1 | tr -d ' \n')" \
  "01000000e8030000e8030000a481000000000000"
chmod 4755 "$mnt/big"
expect "mode on the mount" "$(stat -c %a "$mnt/big")" "4755"
expect "mode on the host" "$(stat -c %a "$root/big")" "755"
expect "xattr hidden" "$(getfattr --absolute-names -d -m - "$mnt/big" 2>&1)" ""
if setfattr -n user.moat.stat -v 0x00 "$mnt/big" 2>/dev/null; then fail "user.moat.stat writable"; fi
setfattr -n user.note -v hi "$mnt/big"
expect "user xattr" "$(getfattr --absolute-names --only-values -n user.note "$mnt/big")" "hi"
mkdir "$mnt/owned"
chown 1000:1000 "$mnt/owned"
su_out=$(setpriv --reuid=1000 --regid=1000 --clear-groups sh -c "echo mine > '$mnt/owned/f' && stat -c '%u:%g' '$mnt/owned/f'")
expect "file created by uid 1000" "$su_out" "1000:1000"
expect "its host owner" "$(stat -c '%u:%g' "$root/owned/f")" "0:0"
if setpriv --reuid=1000 --regid=1000 --clear-groups sh -c "echo x > '$mnt/renamed'" 2>/dev/null; then
  fail "uid 1000 wrote a root-owned 0644 file"
fi

echo "== devices"
mknod "$mnt/null" c 1 3
expect "device on the mount" "$(stat -c '%F %t:%T' "$mnt/null")" "character special file 1:3"
expect "device on the host" "$(stat -c '%F' "$root/null")" "regular empty file"
mkfifo "$mnt/fifo"
expect "fifo on the mount" "$(stat -c '%F' "$mnt/fifo")" "fifo"
expect "ls -l type" "$(ls -l "$mnt/null" | cut -c1)" "c"

echo "== symlinks"
ln -s / "$mnt/escape"
ln -s .. "$mnt/up"
expect "link on the host" "$(readlink "$root/escape")" "/"
expect "link on the mount" "$(stat -c %F "$mnt/escape")" "symbolic link"
mkdir -p "$mnt/bin"
cp /usr/bin/busybox "$mnt/bin/busybox"
rm -f /tmp/pwned
before=$(ls -A "$work" | sort | tr '\n' ' ')
out=$(chroot "$mnt" /bin/busybox cat /escape/etc/hostname 2>&1) && fail "read through escape: $out"
expect "read through escape" "$out" "cat: can't open '/escape/etc/hostname': No such file or directory"
out=$(chroot "$mnt" /bin/busybox sh -c 'echo x > /escape/tmp/pwned' 2>&1) && fail "write through escape"
expect "write through escape" "$out" "sh: can't create /escape/tmp/pwned: nonexistent directory"
out=$(chroot "$mnt" /bin/busybox cat /up/up/etc/hostname 2>&1) && fail "read through up: $out"
expect "read through up" "$out" "cat: can't open '/up/up/etc/hostname': No such file or directory"
[[ ! -e /tmp/pwned && ! -e /pwned && ! -e $work/pwned ]] || fail "a file appeared outside the directory"
expect "nothing new beside the directory" "$(ls -A "$work" | sort | tr '\n' ' ')" "$before"
rm "$mnt/bin/busybox"

echo "== read-only"
"$bin/moat_fs_dir_mount" --ro "$root" "$ro"
expect "read on the ro mount" "$(sha256sum < "$ro/big")" "$want"
expect "owner on the ro mount" "$(stat -c '%u:%g %a' "$ro/big")" "1000:1000 4755"
ro_err() { local out; out=$("$@" 2>&1) && fail "allowed on the ro mount: $*"; echo "$out"; }
expect "write" "$(ro_err sh -c "echo x > '$ro/new'")" "sh: 1: cannot create $ro/new: Read-only file system"
expect "append" "$(ro_err sh -c "echo x >> '$ro/renamed'")" "sh: 1: cannot create $ro/renamed: Read-only file system"
expect "mkdir" "$(ro_err mkdir "$ro/d")" "mkdir: cannot create directory '$ro/d': Read-only file system"
expect "rm" "$(ro_err rm "$ro/renamed")" "rm: cannot remove '$ro/renamed': Read-only file system"
expect "mv" "$(ro_err mv "$ro/renamed" "$ro/x")" "mv: cannot move '$ro/renamed' to '$ro/x': Read-only file system"
expect "chmod" "$(ro_err chmod 600 "$ro/renamed")" "chmod: changing permissions of '$ro/renamed': Read-only file system"
expect "chown" "$(ro_err chown 5 "$ro/renamed")" "chown: changing ownership of '$ro/renamed': Read-only file system"
expect "ln -s" "$(ro_err ln -s x "$ro/l")" "ln: failed to create symbolic link '$ro/l': Read-only file system"
expect "mknod" "$(ro_err mknod "$ro/n" c 1 3)" "mknod: $ro/n: Read-only file system"
expect "setfattr" "$(ro_err setfattr -n user.x -v 1 "$ro/renamed")" "setfattr: $ro/renamed: Read-only file system"
expect "truncate" "$(ro_err truncate -s 0 "$ro/renamed")" "truncate: cannot open '$ro/renamed' for writing: Read-only file system"
expect "host unchanged" "$(cat "$root/renamed")" "hel"
umount "$ro"

echo "== rm -rf"
rm -rf "$mnt"/*
expect "mount empty" "$(ls -A "$mnt")" ""
expect "host empty" "$(ls -A "$root")" ""
umount "$mnt"
for _ in $(seq 50); do pgrep -f "moat_fs_dir_mount .*$work" >/dev/null || break; sleep 0.1; done
pgrep -f "moat_fs_dir_mount .*$work" >/dev/null && fail "server still running after umount"
echo "dir_mount_test: ok"
