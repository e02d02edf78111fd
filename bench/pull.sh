#!/usr/bin/env bash
# Pull benchmark on the Debian minbase + python3 image (tests/fixtures/
# make-debian-python.sh) served by a local docker-registry on 127.0.0.1:
#
#   moat:  moat image pull --insecure REF        (verified blobs + EROFS root)
#   peer:  skopeo copy docker://REF oci:DIR:TAG && umoci unpack --image DIR:TAG
#
# Both start from nothing each run (fresh $MOAT_HOME / fresh directory), run
# alternately in the same run, RUNS times each (default 5); medians
# and the ratio are reported. Then the EROFS build alone: moat-mkerofs on
# the image's two gzip layers and on the same layers uncompressed, against
# mkfs.erofs on the tree umoci extracted (time and image size).
#
# Needs root (umoci unpack keeps owners and devices; the fixture build uses
# debootstrap the first time).
#
# usage: bench/pull.sh [BUILD_DIR] [RUNS]
# Results are printed and written to bench/results/pull-<date>.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${2:-5}
moat=$build/bin/moat
mkerofs=$build/bin/moat-mkerofs
for t in "$moat" "$mkerofs"; do [[ -x $t ]] || { echo "missing $t (build first)" >&2; exit 1; }; done
for t in skopeo umoci mkfs.erofs docker-registry; do
  command -v "$t" >/dev/null || { echo "$t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

layout=$("$root/tests/fixtures/make-debian-python.sh")
work=$(mktemp -d)
reg=$work/registry
cleanup() {
  "$root/tests/fixtures/local-registry.sh" stop "$reg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$root/tests/fixtures/local-registry.sh" start "$reg" >/dev/null
ref=$("$root/tests/fixtures/local-registry.sh" push "$reg" "$layout" python3 bench/debian-python3)

. "$root/bench/timing.sh"

moat_pull() {
  rm -rf "$work/home"
  MOAT_HOME=$work/home "$moat" image pull --insecure -q "$ref"
}
peer_pull() {
  rm -rf "$work/peer"
  mkdir -p "$work/peer"
  skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/peer/oci:python3" &&
    umoci unpack --image "$work/peer/oci:python3" "$work/peer/bundle"
}

moat_times=() peer_times=()
for i in $(seq 1 "$runs"); do
  if ((i % 2)); then
    moat_times+=("$(timed moat_pull)")
    peer_times+=("$(timed peer_pull)")
  else
    peer_times+=("$(timed peer_pull)")
    moat_times+=("$(timed moat_pull)")
  fi
done
moat_med=$(printf '%s\n' "${moat_times[@]}" | median)
peer_med=$(printf '%s\n' "${peer_times[@]}" | median)
erofs=$(find "$work/home/images" -name '*.erofs' | head -n 1)
fsck.erofs "$erofs" >/dev/null
entries=$(find "$work/peer/bundle/rootfs" | wc -l)
tree_bytes=$(du -sb --apparent-size "$work/peer/bundle/rootfs" | cut -f1)

# EROFS build alone, same layers / same tree.
mapfile -t layers < <(python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
for l in m["layers"]:
    print(d + "/blobs/sha256/" + l["digest"][7:])' "$layout")
gz_args=() tar_args=()
for i in "${!layers[@]}"; do
  gz_args+=(--layer "${layers[$i]}")
  gzip -dc "${layers[$i]}" >"$work/layer$i.tar"
  tar_args+=(--layer "$work/layer$i.tar")
done
gz_times=() tar_times=() mkfs_times=()
for i in $(seq 1 "$runs"); do
  gz_times+=("$(timed "$mkerofs" "${gz_args[@]}" "$work/gz.erofs")")
  tar_times+=("$(timed "$mkerofs" "${tar_args[@]}" "$work/tar.erofs")")
  rm -f "$work/mkfs.erofs"
  mkfs_times+=("$(timed mkfs.erofs --quiet --preserve-mtime "$work/mkfs.erofs" "$work/peer/bundle/rootfs")")
done
gz_med=$(printf '%s\n' "${gz_times[@]}" | median)
tar_med=$(printf '%s\n' "${tar_times[@]}" | median)
mkfs_med=$(printf '%s\n' "${mkfs_times[@]}" | median)
moat_size=$(stat -c %s "$work/tar.erofs")
mkfs_size=$(stat -c %s "$work/mkfs.erofs")
layer_bytes=$(stat -c %s "${layers[@]}" | paste -sd+ | bc)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
report=$(cat <<REPORT
# Pull benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)

\`bench/pull.sh\` on $(uname -r), $(nproc) cpus, load at the end $(cut -d' ' -f1-3 /proc/loadavg).
Image: Debian $(sed -n 's/^suite: //p' "$layout/../info.txt") minbase + python3 \
$(sed -n 's/^python3: //p' "$layout/../info.txt") (tests/fixtures/make-debian-python.sh), 2 gzip layers,
$layer_bytes bytes compressed; $entries entries, $tree_bytes bytes unpacked. Registry: Debian's
docker-registry on 127.0.0.1 (plain HTTP). $runs runs each, alternating, each from an empty store.

## Pull + root filesystem

| | median s | runs (s) |
|---|---|---|
| moat image pull (blobs verified + fsynced, EROFS root built) | $moat_med | ${moat_times[*]} |
| skopeo copy to an OCI layout + umoci unpack | $peer_med | ${peer_times[*]} |

Speed-up (peer / moat): **$(ratio "$peer_med" "$moat_med")×** (target ≥ 1.5×).

## EROFS build alone

| | median s | runs (s) | image bytes |
|---|---|---|---|
| moat-mkerofs, the 2 gzip layers | $gz_med | ${gz_times[*]} | $(stat -c %s "$work/gz.erofs") |
| moat-mkerofs, the 2 layers uncompressed | $tar_med | ${tar_times[*]} | $moat_size |
| mkfs.erofs --preserve-mtime, umoci's extracted tree | $mkfs_med | ${mkfs_times[*]} | $mkfs_size |

Time moat (uncompressed layers) / mkfs.erofs: $(ratio "$tar_med" "$mkfs_med") (target ≤ 1.0);
size moat / mkfs.erofs: $(awk -v a="$moat_size" -v b="$mkfs_size" 'BEGIN{printf "%.4f", a/b}') (target within 5%).
moat-mkerofs also hashes every layer (diff_id); mkfs.erofs reads an already extracted tree.
REPORT
)
echo "$report"
mkdir -p "$root/bench/results"
echo "$report" >"$root/bench/results/pull-$(date -u +%Y%m%d-%H%M%S).md"
