#!/usr/bin/env bash
# Installs libmoat's C ABI (header and library) into a scratch prefix, builds
# examples/hello.c against it as a user would, and runs it: exact output.
# usage: c_example.sh BUILD_DIR EXAMPLE_C
set -euo pipefail
build=$1 example=$2
work=$(mktemp -d /tmp/moat-c-example.XXXXXX)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" --component capi >/dev/null
test -f "$work/prefix/include/moat/moat.h"
cc -std=c11 -Wall -Wextra -Werror "$example" -I"$work/prefix/include" -L"$work/prefix/lib" -lmoat \
  -Wl,-rpath,"$work/prefix/lib" -o "$work/hello"

# Only the ABI is installed there: the runtime's files come from the build.
export MOAT_HOME=$work/home
export MOAT_SHIM=$build/bin/moat-shim
export MOAT_KERNEL=$build/share/moat/vmlinux
export MOAT_INITRAMFS=$build/share/moat/initramfs.cpio
export MOAT_DEFAULT_ROOTFS=$build/share/moat/rootfs-busybox
out=$("$work/hello")
version=$(sed -n 's/^project(moat VERSION \([0-9.]*\).*/\1/p' "$(dirname "$example")/../CMakeLists.txt")
expected="hello from Linux in moat
exit code 0 (libmoat $version, ABI 1)"
if [[ $out != "$expected" ]]; then
  printf 'c_example: unexpected output:\n%s\nexpected:\n%s\n' "$out" "$expected" >&2
  exit 1
fi
# The ABI exports moat_* and nothing of the libraries inside it.
leaked=$(nm -D --defined-only "$work/prefix/lib/libmoat.so" | awk '{print $3}' | grep -v '^moat_' | grep -v '^MOAT_' || true)
if [[ -n $leaked ]]; then
  printf 'c_example: libmoat.so exports more than the C ABI:\n%s\n' "$(head <<<"$leaked")" >&2
  exit 1
fi
echo "c_example: ok"
