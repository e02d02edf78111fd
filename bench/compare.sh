#!/usr/bin/env bash
# Before/after, side by side in one run: two builds of moat (e.g. the commit
# before a change and the change) measured alternately on the same machine,
# so drift and load hit both alike. Medians and the ratio after/before for:
#   cold start   `moat run --rootfs-dir <busybox> -- true`
#   cold + volume the same with a host directory as a volume (its server)
#   exec (CLI)   `moat exec ID -- true` on a running sandbox
#   exec (API)   Sandbox::exec of `true` (moat_bench_exec, the library)
#   pull         `moat image pull` of the Debian python3 fixture from a local
#                registry, from an empty store (as bench/pull.sh)
# Usage: bench/compare.sh BEFORE_BUILD AFTER_BUILD [RUNS] [EXECS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
before=$(cd "${1:?usage: compare.sh BEFORE_BUILD AFTER_BUILD [RUNS] [EXECS]}" && pwd)
after=$(cd "${2:?usage: compare.sh BEFORE_BUILD AFTER_BUILD [RUNS] [EXECS]}" && pwd)
runs=${3:-10}
execs=${4:-100}
rootfs=$after/share/moat/rootfs-busybox
work=$(mktemp -d /tmp/moat-compare.XXXXXX)
reg=$work/registry
cleanup() {
  "$root/tests/fixtures/local-registry.sh" stop "$reg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. "$root/bench/timing.sh"
home_of() { echo "$work/home-$1"; }
moat_of() { if [[ $1 == before ]]; then echo "$before/bin/moat"; else echo "$after/bin/moat"; fi; }
with_home() { local which=$1; shift; MOAT_HOME=$(home_of "$which") "$@"; }

declare -A samples
add() { samples[$1]+="$2 "; }
row() {  # name unit
  local b a
  b=$(printf '%s\n' ${samples[$1-before]} | median)
  a=$(printf '%s\n' ${samples[$1-after]} | median)
  awk -v n="$1" -v u="$2" -v b="$b" -v a="$a" 'BEGIN{printf "| %s | %.2f %s | %.2f %s | %.3f |\n", n, b, u, a, u, a/b}'
}

# Cold start: the rootfs cache warmed first in each home.
for which in before after; do with_home $which "$(moat_of $which)" run --rootfs-dir "$rootfs" -- true; done
for ((i = 0; i < runs; i++)); do
  for which in before after; do
    add cold-$which "$(timed_ms with_home $which "$(moat_of $which)" run --rootfs-dir "$rootfs" -- true)"
  done
done

# Cold start with a volume: its server process, device and guest mount.
mkdir -p "$work/volume"
for ((i = 0; i < runs; i++)); do
  for which in before after; do
    add cold_volume-$which "$(timed_ms with_home $which "$(moat_of $which)" run --rootfs-dir "$rootfs" \
      -v "$work/volume:/data" -- true)"
  done
done

# Exec through the CLI: one running sandbox per build, blocks of execs
# alternating (ABAB) so neither build always goes first.
declare -A ids
for which in before after; do ids[$which]=$(with_home $which "$(moat_of $which)" run -d --rootfs-dir "$rootfs"); done
for round in 1 2; do
  for which in before after; do
    for ((i = 0; i < execs / 2; i++)); do
      add exec_cli-$which "$(timed_ms with_home $which "$(moat_of $which)" exec "${ids[$which]}" -- true)"
    done
  done
done
for which in before after; do with_home $which "$(moat_of $which)" rm -f "${ids[$which]}" >/dev/null; done

# Exec through the library: moat_bench_exec reports its own p50.
for round in 1 2; do
  for which in before after; do
    dir=$before; [[ $which == after ]] && dir=$after
    out=$(with_home $which "$dir/bin/moat_bench_exec" "$((execs / 2))" "$rootfs")
    add exec_api-$which "$(sed -n 's/.*p50=\([0-9.]*\) ms.*/\1/p' <<<"$out")"
  done
done

# Pull from an empty store each time.
layout=$("$root/tests/fixtures/make-debian-python.sh")
"$root/tests/fixtures/local-registry.sh" start "$reg" >/dev/null
ref=$("$root/tests/fixtures/local-registry.sh" push "$reg" "$layout" python3 bench/debian-python3)
pulls=$(( runs < 5 ? runs : 5 ))
for ((i = 0; i < pulls; i++)); do
  for which in before after; do
    rm -rf "$work/pull-home"
    add pull-$which "$(timed_ms env MOAT_HOME="$work/pull-home" "$(moat_of $which)" image pull --insecure -q "$ref")"
  done
done

echo "| benchmark | before (median) | after (median) | after / before |"
echo "|---|---|---|---|"
row cold ms
row cold_volume ms
row exec_cli ms
row exec_api ms
row pull ms
echo
echo "cold: $runs runs each; exec: $execs each (CLI, API p50 of two blocks); pull: $pulls each; alternating."
