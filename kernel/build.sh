#!/usr/bin/env bash
# Builds moat's guest kernel: an uncompressed x86_64 ELF `vmlinux` (booted by QEMU through its
# PVH entry) from Debian's linux-source-6.1 tarball and kernel/moat.config. No downloads.
#
# Usage: kernel/build.sh [--print-path]
#   (no args)     build if needed; print the vmlinux path as the last line of stdout
#   --print-path  print the path the kernel lives at; exit 0 if it is built, 1 if not
#
# Cache: ${MOAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/moat}/kernel/<key>/{vmlinux,config}
# where <key> is the first 16 hex digits of a sha256 over the linux-source-6.1 package version,
# the fragment and this script. The build tree is a temporary directory inside the cache dir
# and is deleted afterwards. Concurrent invocations serialize on a per-key flock.
# Env: MOAT_KERNEL_VERBOSE=1 streams the kbuild output (otherwise it goes to a log that is
#      shown on failure); MOAT_KERNEL_JOBS overrides -j (default: nproc).
set -euo pipefail

readonly pkg=linux-source-6.1
readonly tarball=/usr/src/linux-source-6.1.tar.xz
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly self="$here/$(basename "${BASH_SOURCE[0]}")"
readonly fragment="$here/moat.config"

log() { printf 'kernel/build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mode=build
case ${1:-} in
  "") ;;
  --print-path) mode=print ;;
  -h | --help) sed -n '2,15p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: build.sh [--print-path])" ;;
esac
(($# <= 1)) || die "too many arguments"

[[ -f $fragment ]] || die "$fragment missing"
version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) ||
  die "package $pkg is not installed (apt-get install $pkg)"
[[ -n $version ]] || die "package $pkg is not installed (apt-get install $pkg)"

key=$(
  {
    printf 'pkg %s %s\n' "$pkg" "$version"
    printf 'fragment\n'; cat "$fragment"
    printf 'build.sh\n'; cat "$self"
  } | sha256sum | cut -c1-16
)
cache_root=${MOAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/moat}
kdir="$cache_root/kernel"
out="$kdir/$key"
vmlinux="$out/vmlinux"

if [[ $mode == print ]]; then
  echo "$vmlinux"
  [[ -f $vmlinux ]] && exit 0 || exit 1
fi

if [[ -f $vmlinux ]]; then
  echo "$vmlinux"
  exit 0
fi

# ---- slow path: build under a per-key lock ------------------------------------------------
for tool in make gcc flex bison bc tar xz flock perl; do
  command -v "$tool" >/dev/null || die "'$tool' not found (see scripts/install-deps.sh)"
done
[[ -f $tarball ]] || die "$tarball missing (apt-get install $pkg)"

mkdir -p "$kdir"
exec 9>"$kdir/.lock-$key"
if ! flock -n 9; then
  log "another build of $key is running; waiting for it"
  flock 9
fi
# Whoever held the lock may have finished the job.
if [[ -f $vmlinux ]]; then
  echo "$vmlinux"
  exit 0
fi

# Build trees of killed earlier runs for this key: the lock says nobody owns them any more.
rm -rf "$kdir/.build-$key".*
tmp=$(mktemp -d "$kdir/.build-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src="$tmp/linux"
buildlog="$tmp/build.log"
jobs=${MOAT_KERNEL_JOBS:-$(nproc)}

run() {
  if [[ ${MOAT_KERNEL_VERBOSE:-0} == 1 ]]; then
    "$@" >&2
  elif ! "$@" >>"$buildlog" 2>&1; then
    log "command failed: $*"
    tail -n 60 "$buildlog" >&2
    return 1
  fi
}
kmake() {
  # Fixed build identity so the same inputs give the same vmlinux.
  run make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=moat KBUILD_BUILD_HOST=moat \
    KBUILD_BUILD_TIMESTAMP="$pkg $version" "$@"
}

start=$SECONDS
log "building $key ($pkg $version) in $tmp"
log "extracting $tarball"
mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1

log "configuring: tinyconfig + $(basename "$fragment") + olddefconfig"
kmake tinyconfig
run env KCONFIG_CONFIG=.config ARCH=x86_64 \
  bash -c 'cd "$1" && scripts/kconfig/merge_config.sh -m .config "$2"' merge "$src" "$fragment"
kmake olddefconfig

# Every option the fragment sets must survive olddefconfig: a dependency that is not met
# silently drops an option, which would only show up later as a missing feature in a guest.
bad=()
while IFS= read -r line; do
  if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    grep -qxF -- "$line" "$src/.config" ||
      bad+=("${BASH_REMATCH[1]} (wanted ${BASH_REMATCH[2]}, got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$src/.config" || echo 'absent'))")
  elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
    ! grep -qE "^${BASH_REMATCH[1]}=" "$src/.config" ||
      bad+=("${BASH_REMATCH[1]} (wanted unset, got: $(grep -E "^${BASH_REMATCH[1]}=" "$src/.config"))")
  fi
done <"$fragment"
if ((${#bad[@]})); then
  log "error: olddefconfig dropped or changed ${#bad[@]} option(s) of $(basename "$fragment"):"
  printf '  %s\n' "${bad[@]}" >&2
  log "fix their dependencies in the fragment"
  exit 1
fi

log "compiling vmlinux with -j$jobs (several minutes)"
kmake -j"$jobs" vmlinux
[[ -f $src/vmlinux ]] || die "build finished without vmlinux"

# Publish: config first, vmlinux last (its presence means the entry is complete); both via
# rename within the cache filesystem, so readers never see a partial file.
mkdir -p "$out"
cp "$src/.config" "$out/.config.tmp"
mv -f "$out/.config.tmp" "$out/config"
mv "$src/vmlinux" "$out/.vmlinux.tmp"
mv -f "$out/.vmlinux.tmp" "$vmlinux"
rm -rf "$tmp"
trap - EXIT
log "done in $((SECONDS - start))s: $(du -h "$vmlinux" | cut -f1) $vmlinux"
echo "$vmlinux"
