#!/usr/bin/env bash
# moat-runtime under podman (docs/oci-runtime.md), side by side in one run:
#   - `podman run --rm IMG true` with moat-runtime;
#   - the same with crun, podman's own runtime, where it can run here;
#   - `moat run --rm` of the same root (the image's rootfs as --rootfs-dir),
#     what moat-runtime adds podman's own work to.
# Medians of RUNS wall times. Usage: bench/oci_runtime.sh [BUILD] [RUNS]
set -euo pipefail
build=${1:-build}
runs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/timing.sh"
build=$(readlink -f "$build")
work=$(mktemp -d /tmp/moat-bench-oci-XXXXXX)
podman=(podman --root "$work/root" --runroot "$work/run" --storage-driver vfs --cgroup-manager cgroupfs
        --events-backend none)
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none)
cleanup() {
  "${podman[@]}" --runtime "$build/bin/moat-runtime" rm -af >/dev/null 2>&1 || true
  "${podman[@]}" rmi -af >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

tar -C "$build/share/moat/rootfs-busybox" -c . | "${podman[@]}" import - local/busybox:1 >/dev/null 2>&1
samples() {  # label command...
  local label=$1
  shift
  "$@" >/dev/null 2>&1 || { echo "| $label | fails here: $("$@" 2>&1 | tail -1) |"; return 0; }
  local t
  t=$(for _ in $(seq "$runs"); do timed "$@"; done | median)
  echo "| $label | $t |"
  eval "median_${label//[^a-z]/_}=$t"
}

echo "## moat-runtime ($(date -u +%Y-%m-%d), $(nproc) cores, TCG)"
echo
echo "Wall time of a container that runs \`true\` and is removed; medians of $runs."
echo
echo "| command | seconds |"
echo "|---|---|"
samples "podman moat-runtime" "${podman[@]}" --runtime "$build/bin/moat-runtime" run --rm "${limits[@]}" local/busybox:1 true
samples "podman crun" "${podman[@]}" --runtime crun run --rm "${limits[@]}" local/busybox:1 true
MOAT_HOME="$work/moat-home" samples "moat run" "$build/bin/moat" run --rm --rootfs-dir "$build/share/moat/rootfs-busybox" -- true
echo
if [[ -n ${median_podman_moat_runtime:-} && -n ${median_moat_run:-} ]]; then
  awk -v a="$median_podman_moat_runtime" -v b="$median_moat_run" \
    'BEGIN{printf "podman + moat-runtime / moat run: %.2f\n", a/b}'
fi
