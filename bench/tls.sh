#!/usr/bin/env bash
# TLS interception's cost (docs/tls.md), intercepted against bypassed in
# one run, in one sandbox: two host HTTPS servers on 127.0.0.1 (a test CA's
# certificates, given to the sandbox with --tls-upstream-ca), reached as
# api.bench (intercepted) and pinned.bench (--tls-bypass: relayed as it is).
# The guest's client is bench/tools/tls_client.c, built static here and
# shared into the guest; it does not check certificates, so both sides do
# the same work in the guest.
#
#   handshakes  N (default 200) fresh connections with full handshakes
#               (no resumption): p50 and p99 of each one's time in the guest,
#               and the shim's CPU time per handshake (all its threads,
#               /proc/PID/stat, 10 ms ticks)
#   download    SIZE MiB (default 256) over one TLS connection
#
# Usage: bench/tls.sh BUILD_DIR [RUNS] [N] [SIZE_MIB]
set -euo pipefail
build=$(cd "${1:?usage: tls.sh BUILD_DIR [RUNS] [N] [SIZE_MIB]}" && pwd)
runs=${2:-3}
handshakes=${3:-200}
size_mib=${4:-256}
moat=$build/bin/moat
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /var/tmp/moat-tlsbench.XXXXXX)
export MOAT_HOME=$work/home
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$moat" rm -f tlsbench >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$here/timing.sh"

# A test CA and a certificate for each name.
pki=$work/pki
mkdir -p "$pki" "$work/www" "$work/tools"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
  -days 2 -subj "/CN=moat bench CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign" 2>/dev/null
for name in api.bench pinned.bench; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$name.key" -out "$pki/$name.csr" \
    -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$name" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
done
truncate -s $((size_mib * 1024 * 1024)) "$work/www/big"
gcc -O2 -static -o "$work/tools/tls_client" "$here/tools/tls_client.c" -lssl -lcrypto 2>/dev/null

start_server() {  # name: prints the port
  python3 "$here/../tests/vm/net_servers.py" https 127.0.0.1 "$work/www" "$pki/$1.crt" "$pki/$1.key" >"$work/$1.port" &
  pids+=($!)
  for _ in $(seq 50); do [[ -s $work/$1.port ]] && break; sleep 0.1; done
}
start_server api.bench
start_server pinned.bench
api=$(cat "$work/api.bench.port")
pinned=$(cat "$work/pinned.bench.port")

"$moat" create --name tlsbench --memory 1536 --rootfs-dir "$build/share/moat/rootfs-busybox" \
  -v "$work/tools:/bench:ro" --add-host api.bench:host-gateway --add-host pinned.bench:host-gateway \
  --allow "@host:$api" --allow "@host:$pinned" --tls-intercept --tls-ports "$api,$pinned" \
  --tls-bypass pinned.bench --tls-upstream-ca "$pki/ca.crt" >/dev/null
"$moat" start tlsbench >/dev/null
dir=$("$moat" inspect tlsbench | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dir"])')
shim=$(cat "$dir/shim.pid")
ticks() { awk '{print $14 + $15}' "/proc/$shim/stat"; }
hz=$(getconf CLK_TCK)

declare -A samples cpu
for ((i = 0; i < runs; i++)); do
  for side in api pinned; do
    port=$api name=api.bench
    [[ $side == pinned ]] && port=$pinned name=pinned.bench
    before=$(ticks)
    samples[${side}_hs]+="$("$moat" exec tlsbench -- /bench/tls_client handshakes 10.0.2.2 "$port" "$name" "$handshakes" | tr '\n' ' ')"
    after=$(ticks)
    cpu[$side]+="$(awk -v a="$before" -v b="$after" -v hz="$hz" -v n="$handshakes" 'BEGIN{printf "%.3f", (b-a)*1000/hz/n}') "
    samples[${side}_down]+="$("$moat" exec tlsbench -- /bench/tls_client get 10.0.2.2 "$port" "$name" /big | cut -d' ' -f1) "
  done
done

percentile() {  # p, then the samples
  local p=$1
  shift
  printf '%s\n' "$@" | sort -n | awk -v p="$p" '{v[NR]=$1} END{i=int((NR-1)*p/100)+1; print v[i]}'
}
med() { printf '%s\n' $1 | median; }
echo "| | intercepted (api.bench) | bypassed (pinned.bench) | intercepted ÷ bypassed |"
echo "|---|---|---|---|"
for p in 50 99; do
  a=$(percentile $p ${samples[api_hs]}) b=$(percentile $p ${samples[pinned_hs]})
  echo "| handshake p$p ($((handshakes * runs)) connections), in the guest | $a ms | $b ms | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}') |"
done
a=$(med "${cpu[api]}") b=$(med "${cpu[pinned]}")
echo "| shim CPU per handshake (median of $runs batches) | $a ms | $b ms | +$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a-b}') ms |"
a=$(med "${samples[api_down]}") b=$(med "${samples[pinned_down]}")
echo "| download $size_mib MiB (median of $runs) | $(awk -v s="$a" -v m="$size_mib" 'BEGIN{printf "%.2f s, %.1f MiB/s", s, m/s}') | $(awk -v s="$b" -v m="$size_mib" 'BEGIN{printf "%.2f s, %.1f MiB/s", s, m/s}') | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", b/a}') |"
