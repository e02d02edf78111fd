#!/usr/bin/env bash
# The fresh-machine check: runs the README's two commands, `make demo` then
# `make test`, exactly as a new user would, in a clean Debian 12 root
# (scripts/fresh-root.sh) that holds a copy of this checkout and nothing
# else of this machine. A package the tests need that the install script
# does not name is missing there, so the run fails; on this machine, where
# earlier work installed it by hand, it would not.
#
# What the root shares with this machine, and why:
#   - the network namespace: apt reaches the mirror, tests serve on 127.0.0.1;
#   - the network's resolver and local CA certificates (those a machine of
#     this network is installed with);
#   - /dev as a fresh devtmpfs mount (so /dev/kvm, /dev/fuse, /dev/net/tun and
#     the loop devices are there as on any machine), with its own devpts;
#   - read-only overlays of the guest-kernel, test-fixture and compiler
#     caches, so the slow artefacts are not rebuilt (writes land in a
#     throw-away upper layer: a kernel with another key would still be built
#     there, slowly);
#   - an overlay of this machine's downloaded .debs over a download cache kept
#     in ${XDG_CACHE_HOME:-~/.cache}/moat/fresh/apt-archives, so packages are
#     fetched once, not on every run. The packages installed are the same.
# Everything runs in its own mount and PID namespaces: when the run ends, every
# process it started (shims, QEMU, registries) ends and every mount goes.
#
# usage: test-fresh.sh [-- COMMAND]   COMMAND (a bash string) replaces the two
#                                     commands, to look around in the root
#        env: CTEST_ARGS (passed to the inner `make test`), FRESH_KEEP=1 keeps
#             the root for a look afterwards
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

die() { echo "test-fresh: $*" >&2; exit 1; }

if [[ ${1:-} == --inside ]]; then
  # PID 1 of the new namespaces. $2: the work directory, $3: the command.
  work=$2 root=$2/root command=$3
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/moat
  # The root a mount of its own, as a machine's root is: QEMU's jail
  # pivots its root, which the kernel allows only from a mount's root.
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  # A machine's cgroups, as a booted Debian has them mounted: each sandbox's
  # QEMU gets a group of its own there.
  if mountpoint -q /sys/fs/cgroup; then mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"; fi
  mount -t devtmpfs devtmpfs "$root/dev"
  mkdir -p "$root/dev/pts" "$root/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
  mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
  mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
  mount -t tmpfs -o mode=755 tmpfs "$root/run"

  overlay() {  # overlay LOWER TARGET STATE: LOWER read-only, writes go to STATE/upper
    local lower=$1 target=$2 state=$3
    mkdir -p "$state/upper" "$state/work" "$target"
    if [[ -d $lower ]]; then
      mount -t overlay overlay -o "lowerdir=$lower,upperdir=$state/upper,workdir=$state/work" "$target"
    else
      mount --bind "$state/upper" "$target"
    fi
  }
  overlay "$cache/kernel" "$root/root/.cache/moat/kernel" "$work/ovl/kernel"
  overlay "$cache/fixtures" "$root/root/.cache/moat/fixtures" "$work/ovl/fixtures"
  # The compiler cache likewise: objects this machine compiled from the same
  # sources are not compiled again (a missing header or library still fails:
  # ccache checks every input, and linking is not cached).
  overlay "${CCACHE_DIR:-$HOME/.cache/ccache}" "$root/root/.cache/ccache" "$work/ovl/ccache"
  # The download cache's upper layer outlives the run: .debs are fetched once.
  overlay /var/cache/apt/archives "$root/var/cache/apt/archives" "$cache/fresh/apt-archives"

  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # The network's trust anchors, as the machine's resolver: where the
  # network's egress re-signs TLS (a proxy's own CA, installed on every
  # machine of it), a new machine trusts that CA too. The local CAs go where
  # update-ca-certificates reads them when the ca-certificates package is
  # installed, and the bundle where clients look before it is.
  if [[ -d /usr/local/share/ca-certificates ]]; then
    mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    [[ ! -f /etc/ssl/certs/ca-certificates.crt ]] ||
      cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # A new user's login environment, not this one's. Not exec'd: this shell
  # stays PID 1 of the namespace and reaps the orphans (shims) it inherits.
  chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
    LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI="${CI:-}" CTEST_ARGS="${CTEST_ARGS:-}" \
    /bin/bash -c "cd /root/moat && $command"
  exit
fi

command='make demo && make test'
if [[ ${1:-} == -- ]]; then
  shift
  command="$*"
fi

[[ $(id -u) -eq 0 ]] || die "needs root (chroot, mounts)"
start=$(date +%s)
tar=$("$here/fresh-root.sh")

work=$(mktemp -d /var/tmp/moat-fresh.XXXXXX)
cleanup() {
  local rc=$?
  if [[ ${FRESH_KEEP:-} == 1 ]]; then
    echo "test-fresh: kept $work/root" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  exit $rc
}
trap cleanup EXIT
mkdir "$work/root"
tar --numeric-owner --xattrs -xpf "$tar" -C "$work/root"

# The checkout as a clone would have it, plus uncommitted changes: every
# tracked or unignored file, no build trees.
mkdir "$work/root/root/moat"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xpf - -C "$work/root/root/moat"

echo "test-fresh: running '$command' in a clean Debian 12 root ($work/root)" >&2
# The exclusive lock keeps two runs from sharing the download cache's overlay.
exec 9>"${XDG_CACHE_HOME:-$HOME/.cache}/moat/fresh/.run.lock"
flock 9
rc=0
unshare --mount --pid --fork --propagation private -- "$here/test-fresh.sh" --inside "$work" "$command" || rc=$?
echo "test-fresh: $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $(( $(date +%s) - start )) s" >&2
exit $rc
