#!/usr/bin/env bash
# Packs the agent as /init into an uncompressed newc cpio archive. Uncompressed
# because the guest would spend longer inflating it than QEMU spends loading it.
# Usage: make-initramfs.sh AGENT OUTPUT
set -euo pipefail
agent=${1:?usage: make-initramfs.sh AGENT OUTPUT}
out=${2:?usage: make-initramfs.sh AGENT OUTPUT}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$agent" "$stage/init"
strip "$stage/init" 2>/dev/null || true
touch -d @0 "$stage/init" "$stage"
(cd "$stage" && printf 'init\n' | cpio --quiet -o -H newc --reproducible > "$out.tmp")
mv "$out.tmp" "$out"
