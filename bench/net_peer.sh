#!/usr/bin/env bash
# The measurement behind the network's design (docs/network.md): the peer
# against the path a design carried by the agent would take, in one VM. (A
# third path, libslirp in a process of its own behind -netdev stream, was
# measured here as a prototype of the shim's stack and retired when the
# real one landed; bench/network.sh measures that against the peer.)
#
#   peer       QEMU's user-mode network (-netdev user: libslirp inside QEMU)
#              behind a virtio-net device, the guest's own TCP stack talking
#              to a host HTTP server on 127.0.0.1 through slirp's 10.0.2.2;
#   agent      the agent channel moat already has (virtio-serial to the
#              shim), the path a design that carries connections through the
#              agent would take: the same bytes as a command's stdout (guest
#              to host) and stdin (host to guest).
#
# Workloads: SIZE MiB (default 256) downloaded and uploaded, timed inside
# the guest (/proc/uptime) for the peer and on the host for the agent
# channel; N (default 200) sequential short HTTP requests (new connection
# each) through the peer. The guest kernel has virtio-net for this
# (kernel/moat.config); the device is added to the created sandbox's
# config.json (vm.extra_qemu_args) before the first start.
#
# Usage: bench/net_peer.sh BUILD_DIR [RUNS] [SIZE_MIB] [N]
set -euo pipefail
build=$(cd "${1:?usage: net_peer.sh BUILD_DIR [RUNS] [SIZE_MIB] [N]}" && pwd)
runs=${2:-3}
size_mib=${3:-256}
requests=${4:-200}
moat=$build/bin/moat
work=$(mktemp -d /var/tmp/moat-netbench.XXXXXX)
export MOAT_HOME=$work/home
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  "$moat" rm -f netpeer >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# A host HTTP server on loopback (bench/tools/http_sink.py).
python3 "$(dirname "$0")/tools/http_sink.py" "$work/port" &
server_pid=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")
bytes=$((size_mib * 1024 * 1024))
head -c "$bytes" /dev/zero >"$work/upload"

# A sandbox whose VM has one virtio-net device on the given netdev.
net_sandbox() {  # name netdev-args
  "$moat" create --name "$1" --memory 1536 --rootfs-dir "$build/share/moat/rootfs-busybox" >/dev/null
  local dir
  dir=$("$moat" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dir"])')
  python3 - "$dir/config.json" "$2" <<'PY'
import json, sys
path, netdev = sys.argv[1], sys.argv[2]
cfg = json.load(open(path))
cfg["vm"]["extra_qemu_args"] = ["-netdev", netdev, "-device", "virtio-net-device,netdev=n0"]
json.dump(cfg, open(path, "w"), indent=2)
PY
  "$moat" start "$1" >/dev/null
  "$moat" exec "$1" -- sh -c 'ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && route add default gw 10.0.2.2'
  "$moat" exec "$1" -- sh -c "head -c $bytes /dev/zero > /tmp/upload"
}
net_sandbox netpeer "user,id=n0,net=10.0.2.0/24"

guest_seconds() {  # sandbox, shell command to time inside the guest
  "$moat" exec "$1" -- sh -c '
    t() { cut -d" " -f1 /proc/uptime; }
    a=$(t); '"$2"' >/dev/null 2>&1 || exit 1; b=$(t); awk -v a=$a -v b=$b "BEGIN{print b-a}"'
}
. "$(dirname "$0")/timing.sh"

declare -A samples
for ((i = 0; i < runs; i++)); do
  for path in peer; do
    sb=netpeer
    samples[${path}_down]+="$(guest_seconds $sb "wget -q -O /dev/null http://10.0.2.2:$port/zeros/$bytes") "
    samples[${path}_up]+="$(guest_seconds $sb "wget -q -O /dev/null --post-file /tmp/upload http://10.0.2.2:$port/up") "
    samples[${path}_conn]+="$(guest_seconds $sb "i=0; while [ \$i -lt $requests ]; do wget -q -O /dev/null http://10.0.2.2:$port/small || exit 1; i=\$((i+1)); done") "
  done
  samples[agent_down]+="$(timed sh -c "\"$moat\" exec -i netpeer -- sh -c 'cat > /dev/null' < \"$work/upload\"") "
  samples[agent_up]+="$(timed sh -c "\"$moat\" exec netpeer -- head -c $bytes /dev/zero > /dev/null") "
done

row() {  # name what
  local m
  m=$(printf '%s\n' ${samples[$1]} | median)
  awk -v n="$2" -v m="$m" -v mib="$size_mib" -v r="$requests" -v k="$1" 'BEGIN{
    if (k ~ /_conn$/) printf "| %s | %.2f s | %.1f requests/s |\n", n, m, r/m;
    else printf "| %s | %.2f s | %.1f MiB/s |\n", n, m, mib/m }'
}
echo "| path | median ($runs runs) | rate |"
echo "|---|---|---|"
row peer_down "peer: download $size_mib MiB (guest wget, virtio-net + slirp)"
row peer_up "peer: upload $size_mib MiB (guest wget --post-file)"
row peer_conn "peer: $requests sequential short requests"
row agent_down "agent channel: $size_mib MiB host to guest (exec stdin)"
row agent_up "agent channel: $size_mib MiB guest to host (exec stdout)"
