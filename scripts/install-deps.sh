#!/usr/bin/env bash
# Installs every build and runtime dependency of moat that is missing, from
# Debian's archive. Safe to run again: it does nothing when all are present.
# With --list, prints the package names (one a line) and installs nothing;
# scripts/check-tools.py checks the tests' commands against that list.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build make pkg-config git ccache
  # libraries (see README.md for why each is there)
  nlohmann-json3-dev libcli11-dev libssl-dev libsqlite3-dev libarchive-dev zlib1g-dev
  libcurl4-openssl-dev libgtest-dev libgmock-dev googletest libbenchmark-dev libseccomp-dev
  # fuzzing (clang's libFuzzer)
  clang libclang-rt-14-dev
  # VM runtime
  qemu-system-x86 e2fsprogs busybox-static cpio
  # guest kernel build
  linux-source-6.1 flex bison bc libelf-dev dwarves xz-utils
  # tests and benchmarks
  python3 util-linux procps coreutils attr kmod
)

# Components add their own needs in scripts/packages-<component>.txt: one
# package a line, then an optional `unless=PATH`: skipped where PATH exists
# (what the package provides came with another installation, e.g. a Node
# from elsewhere that brings its own headers). --list names every package,
# conditions or not: a check of which package provides a command must see
# the same list before the install (where the PATH was absent) and after it
# (where the package just installed is what made it present).
here=$(cd "$(dirname "$0")" && pwd)
for list in "$here"/packages-*.txt; do
  [[ -e $list ]] || continue
  while read -r p condition _; do
    [[ -z $p || $p == \#* ]] && continue
    if [[ ${1:-} != --list && $condition == unless=* && -e ${condition#unless=} ]]; then continue; fi
    packages+=("$p")
  done < "$list"
done

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
