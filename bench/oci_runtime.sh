#!/usr/bin/env bash
# moat-runtime under podman and containerd (docs/oci-runtime.md), side by
# side in one run:
#   - `podman run --rm IMG true` with moat-runtime, and with runc and crun
#     (the engine's own work plus a container that costs next to nothing);
#   - `ctr run --rm IMG ID true` through containerd's runc shim, with
#     moat-runtime and with runc (a containerd of the benchmark's own);
#   - `moat run --rm` of the same root (the image's rootfs as --rootfs-dir),
#     booted (--cold) and warm-started (the default; docs/sandboxes.md).
# What moat-runtime adds is (engine + moat-runtime) - (engine + runc), set
# against `moat run --cold`, which boots as moat-runtime must (a container's
# root is the engine's directory over virtio-fs, which QEMU cannot save, so
# it has no warm start), and against the warm `moat run`. Medians of RUNS
# wall times.
# Usage: bench/oci_runtime.sh [BUILD] [RUNS]
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
ctr=(ctr --address "$work/containerd.sock")
containerd_pid=
cleanup() {
  "${podman[@]}" --runtime "$build/bin/moat-runtime" rm -af >/dev/null 2>&1 || true
  "${podman[@]}" rmi -af >/dev/null 2>&1 || true
  [[ -z $containerd_pid ]] || { kill "$containerd_pid"; wait "$containerd_pid" || true; }
  rm -rf "$work"
}
trap cleanup EXIT

tar -C "$build/share/moat/rootfs-busybox" -c . | "${podman[@]}" import - local/busybox:1 >/dev/null 2>&1
"${podman[@]}" save --format oci-archive -o "$work/busybox.tar" local/busybox:1 >/dev/null 2>&1
cat > "$work/containerd.toml" <<EOF
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
EOF
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do "${ctr[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
"${ctr[@]}" images import --snapshotter native "$work/busybox.tar" >/dev/null
n=0
ctr_run() {  # runtime-binary: one container, a fresh id each time
  n=$((n + 1))
  "${ctr[@]}" run --rm --snapshotter native --runc-binary "$1" --runc-root "$work/runc-root" \
    localhost/local/busybox:1 "bench-$n" true
}
# Each command is tried once (a failing one is reported, not timed), then
# timed RUNS times, interleaved round by round so that a drift of the
# machine's speed falls on all of them alike.
labels=()
cmd_podman_moat_runtime() { "${podman[@]}" --runtime "$build/bin/moat-runtime" run --rm "${limits[@]}" local/busybox:1 true; }
cmd_podman_runc() { "${podman[@]}" --runtime runc run --rm "${limits[@]}" local/busybox:1 true; }
cmd_podman_crun() { "${podman[@]}" --runtime crun run --rm "${limits[@]}" local/busybox:1 true; }
cmd_ctr_moat_runtime() { ctr_run "$build/bin/moat-runtime"; }
cmd_ctr_runc() { ctr_run "$(command -v runc)"; }
cmd_moat_run_cold() { MOAT_HOME="$work/moat-home" "$build/bin/moat" run --rm --cold --rootfs-dir "$build/share/moat/rootfs-busybox" -- true; }
cmd_moat_run() { MOAT_HOME="$work/moat-home" "$build/bin/moat" run --rm --rootfs-dir "$build/share/moat/rootfs-busybox" -- true; }
declare -A failed
for label in "podman moat-runtime" "podman runc" "podman crun" "ctr moat-runtime" "ctr runc" "moat run cold" "moat run"; do
  key=${label//[^a-z]/_}
  if "cmd_$key" >/dev/null 2>"$work/err"; then
    labels+=("$label")
  else
    failed[$label]=$(tail -1 "$work/err")
  fi
done
for _ in $(seq "$runs"); do
  for label in "${labels[@]}"; do
    key=${label//[^a-z]/_}
    timed "cmd_$key" >>"$work/times-$key"
  done
done

echo "## moat-runtime ($(date -u +%Y-%m-%d), $(nproc) cores, TCG)"
echo
echo "Wall time of a container that runs \`true\` and is removed; medians of $runs, interleaved."
echo
echo "| command | seconds |"
echo "|---|---|"
for label in "podman moat-runtime" "podman runc" "podman crun" "ctr moat-runtime" "ctr runc" "moat run cold" "moat run"; do
  key=${label//[^a-z]/_}
  if [[ -n ${failed[$label]:-} ]]; then
    echo "| $label | fails here: ${failed[$label]} |"
    continue
  fi
  t=$(median <"$work/times-$key")
  echo "| $label | $t |"
  eval "median_$key=$t"
done
echo
ratio() {  # label engine+moat engine+runc
  [[ -n $2 && -n $3 && -n ${median_moat_run:-} && -n ${median_moat_run_cold:-} ]] || return 0
  awk -v label="$1" -v a="$2" -v b="$3" -v c="$median_moat_run_cold" -v m="$median_moat_run" \
    'BEGIN{printf "%s: moat-runtime adds %.3f s over the engine with runc; / moat run --cold %.3f s: %.2f; / moat run (warm) %.3f s: %.2f\n", label, a-b, c, (a-b)/c, m, (a-b)/m}'
}
ratio podman "${median_podman_moat_runtime:-}" "${median_podman_runc:-}"
ratio containerd "${median_ctr_moat_runtime:-}" "${median_ctr_runc:-}"
