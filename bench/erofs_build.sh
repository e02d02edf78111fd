#!/usr/bin/env bash
# EROFS build benchmark: moat-mkerofs (layer tar -> image, verifying the
# diff_id on the way) against mkfs.erofs (extracted directory -> image) on the
# same tree: wall time (best of 3), image size and peak RSS. Then peak RSS of
# moat-mkerofs on a layer of >= 1 GiB of incompressible data.
#
# usage: bench/erofs_build.sh [BUILD_DIR] [TREE_DIR]
#   BUILD_DIR  build tree holding bin/moat-mkerofs (default: build)
#   TREE_DIR   tree to image (default: a copy of /etc, /usr/include,
#              /usr/share/doc and /usr/lib/python3*, about 300 MB)
# Results are printed and written to bench/results/erofs_build-<date>.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
tree=${2:-}
tool=$build/bin/moat-mkerofs
[[ -x $tool ]] || tool=$(find "$build" -name moat-mkerofs -type f -perm -u+x | head -n 1)
[[ -x $tool ]] || { echo "moat-mkerofs not found under $build" >&2; exit 1; }
command -v mkfs.erofs >/dev/null || { echo "mkfs.erofs missing (apt install erofs-utils)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -z $tree ]]; then
  tree=$work/tree
  mkdir -p "$tree"
  for src in /etc /usr/include /usr/share/doc /usr/lib/python3*; do
    [[ -d $src ]] && cp -a "$src" "$tree/$(basename "$src")" 2>/dev/null || true
  done
fi
tar --xattrs --xattrs-include='*' --numeric-owner -C "$tree" -cf "$work/layer.tar" .

# best-of-3 wall seconds and the peak RSS of that run: "SECONDS RSS_KIB"
best_of_3() {
  local best="" line
  for _ in 1 2 3; do
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>&1
    line=$(tail -n 1 "$work/time")
    if [[ -z $best ]] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then
      best=$line
    fi
  done
  echo "$best"
}

read -r moat_s moat_rss < <(best_of_3 "$tool" --layer "$work/layer.tar" "$work/moat.erofs")
read -r mkfs_s mkfs_rss < <(best_of_3 mkfs.erofs --quiet --preserve-mtime "$work/mkfs.erofs" "$tree")
fsck.erofs "$work/moat.erofs" >/dev/null
moat_size=$(stat -c %s "$work/moat.erofs")
mkfs_size=$(stat -c %s "$work/mkfs.erofs")
files=$(find "$tree" | wc -l)
tree_bytes=$(du -sb --apparent-size "$tree" | cut -f1)

# Peak RSS on a big layer: 1.1 GiB of random data in 11 files.
big=$work/big
mkdir -p "$big"
for i in $(seq 1 11); do head -c $((100 << 20)) /dev/urandom >"$big/blob$i"; done
tar -C "$big" -cf "$work/big.tar" .
rm -rf "$big"
/usr/bin/time -o "$work/time" -f '%e %M' "$tool" --layer "$work/big.tar" "$work/big.erofs" >/dev/null
read -r big_s big_rss <"$work/time"
big_size=$(stat -c %s "$work/big.erofs")

report=$(cat <<REPORT
erofs_build $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)
tree: $files entries, $tree_bytes bytes; layer tar $(stat -c %s "$work/layer.tar") bytes
                 wall_s  image_bytes  peak_rss_kib
moat-mkerofs     $moat_s  $moat_size  $moat_rss
mkfs.erofs 1.5   $mkfs_s  $mkfs_size  $mkfs_rss
time ratio moat/mkfs: $(awk -v a="$moat_s" -v b="$mkfs_s" 'BEGIN{printf "%.2f", a/b}')
size ratio moat/mkfs: $(awk -v a="$moat_size" -v b="$mkfs_size" 'BEGIN{printf "%.4f", a/b}')
big layer (1.1 GiB random): $big_s s, image $big_size bytes, peak RSS $big_rss KiB
REPORT
)
echo "$report"
mkdir -p "$root/bench/results"
echo "$report" >"$root/bench/results/erofs_build-$(date -u +%Y%m%d-%H%M%S).txt"
