#!/usr/bin/env bash
# Tree equality with a peer: builds the crafted OCI fixture, unpacks it with
# `umoci unpack` (as root) and with moat-mkerofs + a read-only kernel mount,
# and compares the two trees with tree_compare.py. Needs root, umoci,
# fsck.erofs and the erofs module.
#
# usage: compare_with_umoci.sh MOAT_MKEROFS
set -euo pipefail
mkerofs=${1:?usage: compare_with_umoci.sh path/to/moat-mkerofs}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cleanup() {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  rm -rf "$work"
}
trap cleanup EXIT

mapfile -t layers < <(python3 "$here/make_oci_fixture.py" "$work/layout" fixture)
args=()
for l in "${layers[@]}"; do args+=(--layer "$l"); done

(cd "$work" && umoci unpack --image layout:fixture bundle >/dev/null)
"$mkerofs" "${args[@]}" "$work/moat.erofs" >/dev/null
fsck.erofs "$work/moat.erofs" >/dev/null
mkdir -p "$work/mnt"
mount -t erofs -o loop,ro "$work/moat.erofs" "$work/mnt"
# The root's times are undefined in OCI (umoci uses the unpack time).
python3 "$here/tree_compare.py" --ignore-root-times "$work/bundle/rootfs" "$work/mnt"
