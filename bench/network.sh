#!/usr/bin/env bash
# The sandbox network against its peer, side by side in one run:
#
#   moat   the sandbox network (docs/network.md): virtio-net on a stream
#          socket to the shim, whose filter and resolver sit in front of
#          libslirp; the guest configured by the agent; `--allow
#          host.moat.internal:PORT` opens the host's test server.
#   peer   QEMU's own user-mode network (-netdev user: the same libslirp
#          inside QEMU, no policy) on a virtio-net device of a `--net none`
#          sandbox, configured by hand in the guest.
#
# Same kernel, root (busybox), memory and host server (127.0.0.1). Both VMs
# run throughout. Workloads, timed inside the guest (/proc/uptime):
#   down      SIZE MiB (default 1024) downloaded: wget -O /dev/null
#   up        UPLOAD MiB (default 256) posted from the guest's tmpfs
#   conn      N (default 1000) sequential short requests, a connection each,
#             from one process (bench/tools/conn_loop.c, built static here
#             and shared into both guests): the connection rate
#   wget      the same N requests, a wget each: its own start, the
#             guest's fork and exec, is most of each request's time (the
#             guest's clock, /proc/uptime, ticks in 10 ms)
#   dns       moat: 100 lookups of host.moat.internal (answered by the
#             sandbox's resolver) and of a name its upstream answers (a DNS
#             server on loopback, --dns); the peer: one lookup through
#             slirp's DNS, which forwards to the host's resolver and cannot
#             be pointed elsewhere (on a machine without one, no answer)
# and the memory an idle connection costs: RSS of the process that holds
# the stack (the shim for moat, QEMU for the peer) before and after the
# guest opens IDLE (default 1000) connections to a server that holds them.
#
# Usage: bench/network.sh BUILD_DIR [RUNS] [SIZE_MIB] [N] [IDLE]
set -euo pipefail
build=$(cd "${1:?usage: network.sh BUILD_DIR [RUNS] [SIZE_MIB] [N] [IDLE]}" && pwd)
runs=${2:-3}
size_mib=${3:-1024}
requests=${4:-1000}
idle=${5:-1000}
upload_mib=256
moat=$build/bin/moat
work=$(mktemp -d /var/tmp/moat-netbench.XXXXXX)
export MOAT_HOME=$work/home
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$moat" rm -f netmoat netpeer >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$(dirname "$0")/timing.sh"

# Host servers on loopback: HTTP and a TCP server that holds connections.
python3 "$(dirname "$0")/tools/http_sink.py" "$work/port" "$work/hold" &
pids+=($!)
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")
hold=$(cat "$work/hold")
python3 "$(dirname "$0")/../tests/vm/net_servers.py" dns 127.0.0.1 name.bench=93.184.216.34 >"$work/dns" &
pids+=($!)
for _ in $(seq 50); do [[ -s $work/dns ]] && break; sleep 0.1; done
dns_port=$(cat "$work/dns")
bytes=$((size_mib * 1024 * 1024))
up_bytes=$((upload_mib * 1024 * 1024))

mkdir -p "$work/tools"
gcc -O2 -static -o "$work/tools/conn_loop" "$(dirname "$0")/tools/conn_loop.c"

root=$build/share/moat/rootfs-busybox
"$moat" create --name netmoat --memory 1536 --rootfs-dir "$root" -v "$work/tools:/bench:ro" --max-connections $((idle + 100)) --dns "127.0.0.1:$dns_port" \
  --allow "host.moat.internal:$port" --allow "host.moat.internal:$hold" >/dev/null
"$moat" create --name netpeer --memory 1536 --rootfs-dir "$root" -v "$work/tools:/bench:ro" --net none >/dev/null
sandbox_dir() { "$moat" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dir"])'; }
dir=$(sandbox_dir netpeer)
moat_dir=$(sandbox_dir netmoat)
python3 - "$dir/config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["vm"]["extra_qemu_args"] = ["-netdev", "user,id=n0,net=10.0.2.0/24", "-device",
                                "virtio-net-device,netdev=n0,mac=52:54:00:12:34:56"]
json.dump(cfg, open(sys.argv[1], "w"), indent=2)
PY
"$moat" start netmoat >/dev/null
"$moat" start netpeer >/dev/null
"$moat" exec netpeer -- sh -c 'ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && route add default gw 10.0.2.2 &&
  echo nameserver 10.0.2.3 > /etc/resolv.conf'
for sb in netmoat netpeer; do "$moat" exec "$sb" -- sh -c "head -c $up_bytes /dev/zero > /tmp/upload"; done

guest_seconds() {  # sandbox, shell command to time inside the guest
  "$moat" exec "$1" -- sh -c '
    t() { cut -d" " -f1 /proc/uptime; }
    a=$(t); { '"$2"'; } >/dev/null 2>&1 || exit 1; b=$(t); awk -v a=$a -v b=$b "BEGIN{print b-a}"'
}
connection_rate() {  # sandbox: seconds for the requests, timed by the guest's process itself
  "$moat" exec "$1" -- /bench/conn_loop 10.0.2.2 "$port" /small "$requests"
}
declare -A samples
for ((i = 0; i < runs; i++)); do
  for path in moat peer; do
    sb=net$path
    samples[${path}_down]+="$(guest_seconds $sb "wget -q -O /dev/null http://10.0.2.2:$port/zeros/$bytes") "
    samples[${path}_up]+="$(guest_seconds $sb "wget -q -O /dev/null --post-file /tmp/upload http://10.0.2.2:$port/up") "
    samples[${path}_conn]+="$(connection_rate $sb) "
    samples[${path}_wget]+="$(guest_seconds $sb "i=0; while [ \$i -lt $requests ]; do wget -q -O /dev/null http://10.0.2.2:$port/small || exit 1; i=\$((i+1)); done; true") "
  done
  samples[moat_dnslocal]+="$(guest_seconds netmoat "i=0; while [ \$i -lt 100 ]; do nslookup -type=a host.moat.internal 10.0.2.3; i=\$((i+1)); done; true") "
  samples[moat_dnsup]+="$(guest_seconds netmoat "i=0; while [ \$i -lt 100 ]; do nslookup -type=a name.bench 10.0.2.3; i=\$((i+1)); done; true") "
done
peer_dns=$(guest_seconds netpeer "timeout 10 nslookup -type=a name.bench 10.0.2.3" || echo "no answer")

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
idle_cost() {  # sandbox pid-of-the-stack's-process
  local before after
  before=$(rss_kib "$2")
  "$moat" exec "$1" -- sh -c "rm -f /tmp/f; mkfifo /tmp/f; i=0; while [ \$i -lt $idle ]; do nc 10.0.2.2 $hold < /tmp/f >/dev/null 2>&1 & i=\$((i+1)); done; exec 3>/tmp/f; sleep 20; netstat -tn | grep -c ESTABLISHED > /tmp/established"
  after=$(rss_kib "$2")
  local count
  count=$("$moat" exec "$1" -- cat /tmp/established)
  echo "$before $after $count"
  "$moat" exec "$1" -- sh -c 'killall nc; true' >/dev/null 2>&1 || true
}
shim_pid=$(cat "$moat_dir/shim.pid")
qemu_pid=$(pgrep -f "qemu-system.*$dir" | head -1)
read -r moat_before moat_after moat_conns < <(idle_cost netmoat "$shim_pid")
read -r peer_before peer_after peer_conns < <(idle_cost netpeer "$qemu_pid")

med() { printf '%s\n' ${samples[$1]} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "| workload | moat | peer (-netdev user) | moat ÷ peer (rate) |"
echo "|---|---|---|---|"
for w in down up conn wget; do
  m=$(med moat_$w) p=$(med peer_$w)
  case $w in
    down) echo "| download $size_mib MiB | $(awk -v m=$m -v s=$size_mib 'BEGIN{printf "%.2f s, %.1f MiB/s", m, s/m}') | $(awk -v m=$p -v s=$size_mib 'BEGIN{printf "%.2f s, %.1f MiB/s", m, s/m}') | $(ratio $p $m) |" ;;
    up) echo "| upload $upload_mib MiB | $(awk -v m=$m -v s=$upload_mib 'BEGIN{printf "%.2f s, %.1f MiB/s", m, s/m}') | $(awk -v m=$p -v s=$upload_mib 'BEGIN{printf "%.2f s, %.1f MiB/s", m, s/m}') | $(ratio $p $m) |" ;;
    conn) echo "| $requests sequential requests, one process (connection rate) | $(awk -v m=$m -v n=$requests 'BEGIN{printf "%.2f s, %.0f/s", m, n/m}') | $(awk -v m=$p -v n=$requests 'BEGIN{printf "%.2f s, %.0f/s", m, n/m}') | $(ratio $p $m) |"
          echo "| per new connection: connect, request, answer, close | $(awk -v m=$m -v n=$requests 'BEGIN{printf "%.2f ms", m/n*1000}') | $(awk -v m=$p -v n=$requests 'BEGIN{printf "%.2f ms", m/n*1000}') | $(ratio $p $m) |" ;;
    wget) echo "| $requests sequential requests, a wget each | $(awk -v m=$m -v n=$requests 'BEGIN{printf "%.2f s, %.0f/s", m, n/m}') | $(awk -v m=$p -v n=$requests 'BEGIN{printf "%.2f s, %.0f/s", m, n/m}') | $(ratio $p $m) |" ;;
  esac
done
dns_local=$(med moat_dnslocal)
dns_up=$(med moat_dnsup)
printf '| DNS: host.moat.internal (local answer) | %s | — | |\n' "$(awk -v m="$dns_local" 'BEGIN{printf "%.1f ms", m*10}')"
printf '| DNS: a name the upstream answers | %s | %s | |\n' "$(awk -v m="$dns_up" 'BEGIN{printf "%.1f ms", m*10}')" "$peer_dns"
echo
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN{printf "%.1f KiB", (b-a)/n}'; }
printf '| %s idle connections | established | RSS before | RSS after | per connection |\n' "$idle"
printf '|---|---|---|---|---|\n'
printf '| moat (shim) | %s | %s MiB | %s MiB | %s |\n' "$moat_conns" $((moat_before / 1024)) $((moat_after / 1024)) \
  "$(per_conn "$moat_before" "$moat_after" "$moat_conns")"
printf '| peer (QEMU) | %s | %s MiB | %s MiB | %s |\n' "$peer_conns" $((peer_before / 1024)) $((peer_after / 1024)) \
  "$(per_conn "$peer_before" "$peer_after" "$peer_conns")"
