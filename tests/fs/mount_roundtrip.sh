#!/usr/bin/env bash
# Round trip through moat's FUSE server: for every fixture image of the image
# store (crafted, busybox, Debian + python3), three trees must be identical (tree_compare.py: types,
# modes, ids, sizes, contents, mtimes, symlinks, rdev, xattrs, hardlink
# groups and link counts):
#
#   `moat image mount` of the EROFS image moat-mkerofs built from the layers
#   the kernel's own EROFS driver on the same image (mount -t erofs -o loop,ro)
#   `umoci unpack` of the OCI layout
#
# Also: the mount command returns only once the mount answers, a second
# mount on the same directory fails cleanly, and `moat image umount` ends
# the background server. Needs root, /dev/fuse, umoci and the erofs module.
#
# usage: mount_roundtrip.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: mount_roundtrip.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
images=$here/../image
work=$(mktemp -d)
cleanup() {
  for m in "$work"/*/fuse "$work"/*/kernel; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || umount -l "$m"; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

server_count() { pgrep -f -c "moat image mount .*$work/" || true; }

roundtrip() {
  local name=$1 tag=$2
  local dir=$work/$name
  local layout=${3:-$dir/layout}
  mkdir -p "$dir/fuse" "$dir/kernel"
  mapfile -t layers < <(python3 "$here/oci_layers.py" "$layout" "$tag")
  local args=()
  for l in "${layers[@]}"; do args+=(--layer "$l"); done
  "$bin/moat-mkerofs" "${args[@]}" "$dir/image.erofs" >/dev/null
  (cd "$dir" && umoci unpack --image "$layout:$tag" bundle >/dev/null)
  mount -t erofs -o loop,ro "$dir/image.erofs" "$dir/kernel"
  "$bin/moat" image mount "$dir/image.erofs" "$dir/fuse"
  # The command returned: the mount must already answer.
  [[ $(stat -f -c %T "$dir/fuse") == fuseblk || $(stat -f -c %T "$dir/fuse") == fuse ]] ||
    grep -q " $dir/fuse fuse.moat " /proc/mounts
  echo "== $name: moat FUSE vs kernel EROFS"
  python3 "$images/tree_compare.py" "$dir/kernel" "$dir/fuse"
  echo "== $name: moat FUSE vs umoci"
  python3 "$images/tree_compare.py" --ignore-root-times "$dir/bundle/rootfs" "$dir/fuse"
  # Every file read twice: the second time from the page cache (keep-cache).
  find "$dir/fuse" -type f -exec cat {} + | sha256sum > "$dir/first"
  find "$dir/fuse" -type f -exec cat {} + | sha256sum > "$dir/second"
  find "$dir/kernel" -type f -exec cat {} + | sha256sum > "$dir/kernel.sum"
  cmp "$dir/first" "$dir/second"
  cmp "$dir/first" "$dir/kernel.sum"
  # Writes are refused.
  if touch "$dir/fuse/new-file" 2>/dev/null; then echo "write succeeded on a read-only mount" >&2; exit 1; fi
  "$bin/moat" image umount "$dir/fuse"
  umount "$dir/kernel"
  if mountpoint -q "$dir/fuse"; then echo "still mounted after umount" >&2; exit 1; fi
}

python3 "$images/make_oci_fixture.py" "$work/crafted/layout" fixture >/dev/null
roundtrip crafted fixture
python3 "$images/make_busybox_oci.py" "$work/busybox/layout" latest >/dev/null
roundtrip busybox latest
# Debian minbase + python3 (debootstrap, cached outside the checkout): 6,600
# entries and a second layer full of whiteouts.
roundtrip debian python3 "$("$here/../fixtures/make-debian-python.sh")"

# Failures are reported, not hidden: a missing image, a file as mount point.
mkdir -p "$work/err"
if "$bin/moat" image mount "$work/none.erofs" "$work/err" 2>/dev/null; then
  echo "mount of a missing image succeeded" >&2; exit 1
fi
if "$bin/moat" image mount "$work/crafted/image.erofs" "$work/crafted/first" 2>/dev/null; then
  echo "mount on a regular file succeeded" >&2; exit 1
fi
# The background servers exit once unmounted.
for _ in $(seq 50); do
  [[ $(server_count) == 0 ]] && break
  sleep 0.1
done
if [[ $(server_count) != 0 ]]; then echo "server still running after umount" >&2; exit 1; fi
echo "mount round trip: OK"
