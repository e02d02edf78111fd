#!/usr/bin/env bash
# The clean Debian 12 root that `make test-fresh` runs the README's two
# commands in: `debootstrap --variant=minbase bookworm` plus `make` (the one
# thing the README asks a new user to have), with apt pointed at this
# machine's Debian mirrors for bookworm, bookworm-updates and
# bookworm-security, as on a freshly installed machine. Nothing else of
# this machine goes in.
#
# Built at most once a day and cached as a tar outside the checkout:
#   ${XDG_CACHE_HOME:-~/.cache}/moat/fresh/debian-bookworm-minbase-YYYYMMDD.tar
# Older tars are deleted when a new one is made. The build runs under an
# flock in a temporary directory and is renamed into place when complete,
# so a killed build leaves nothing that looks finished.
#
# The mirrors come from this machine's apt sources (tests/fixtures/apt_mirror.py);
# MOAT_DEBIAN_MIRROR and MOAT_DEBIAN_SECURITY_MIRROR override them.
#
# usage: fresh-root.sh      prints the path of the cached tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm

die() { echo "fresh-root: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap missing (scripts/install-deps.sh installs it)"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/moat/fresh
name=debian-$suite-minbase-$(date -u +%Y%m%d)
final=$cache/$name.tar
mkdir -p "$cache"
if [[ -f $final ]]; then echo "$final"; exit 0; fi

exec 9>"$cache/.root.lock"
flock 9
if [[ -f $final ]]; then echo "$final"; exit 0; fi

mirror=${MOAT_DEBIAN_MIRROR:-$(python3 "$here/../tests/fixtures/apt_mirror.py" "$suite")}
security=${MOAT_DEBIAN_SECURITY_MIRROR:-$(python3 "$here/../tests/fixtures/apt_mirror.py" "$suite-security" 2>/dev/null || true)}

staging=$(mktemp -d "$cache/.tmp-$name-XXXXXX")
trap 'rm -rf --one-file-system "$staging"' EXIT
echo "fresh-root: debootstrap $suite from $mirror (a few minutes, once a day)" >&2
debootstrap --variant=minbase --include=make "$suite" "$staging/root" "$mirror" \
  >"$staging/debootstrap.log" 2>&1 || die "debootstrap failed: $(tail -n 20 "$staging/debootstrap.log")"

{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [[ -z $security ]] || echo "deb $security $suite-security main"
} >"$staging/root/etc/apt/sources.list"
# Leftovers of the bootstrap that a real machine does not have.
rm -rf "$staging/root"/var/cache/apt/archives/*.deb "$staging/root"/var/lib/apt/lists/*

tar --numeric-owner --xattrs -C "$staging/root" -cf "$staging/root.tar" .
mv "$staging/root.tar" "$final"
for old in "$cache"/debian-"$suite"-minbase-*.tar; do
  [[ $old == "$final" ]] || rm -f "$old"
done
echo "$final"
