#!/usr/bin/env bash
# moat serve against the C++ API (docs/server.md): exec round trip of `true`
# on a running sandbox through REST (the non-streaming form, one keep-alive
# connection) and through a WebSocket attach (POST + attach + exit), p50/p99
# over N calls each, in ROUNDS alternating rounds; the server's RSS idle
# and with 50 attached commands. Prints a Markdown report.
# usage: bench/server.sh [BUILD_DIR] [N] [ROUNDS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-200}
rounds=${3:-2}
work=$(mktemp -d /tmp/moat-bench-server.XXXXXX)
export MOAT_HOME=$work/home
mkdir -p "$MOAT_HOME"
"$build/bin/moat" serve 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; "$build/bin/moat" rm -f srvbench >/dev/null 2>&1; rm -rf "$work"' EXIT
for _ in $(seq 100); do [[ -S $MOAT_HOME/moat.sock ]] && break; sleep 0.05; done

clients() {
  /usr/bin/python3 - "$n" "$MOAT_HOME/moat.sock" "$server" "$1" <<'PY'
import http.client, json, socket, sys, threading, time, websocket
n, path, pid, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(path)
c = C("moat")
def call(method, url, body=None):
    c.request(method, url, body=json.dumps(body) if body is not None else None)
    r = c.getresponse(); data = r.read(); return r.status, data
def rss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"): return int(line.split()[1])
if mode == "setup":
    s, d = call("POST", "/v1/sandboxes", {"name": "srvbench"}); assert s == 201, d
    sys.exit(0)
def rest():
    s, d = call("POST", "/v1/sandboxes/srvbench/exec", {"argv": ["true"], "wait": True}); assert s == 200, d
def ws_once():
    s, d = call("POST", "/v1/sandboxes/srvbench/exec", {"argv": ["true"], "stdin_open": False}); assert s == 201, d
    sock = socket.socket(socket.AF_UNIX); sock.connect(path)
    w = websocket.WebSocket(); w.connect("ws://moat/v1/sandboxes/srvbench/execs/%s/attach" % json.loads(d)["id"], socket=sock)
    while True:
        op, data = w.recv_data()
        if op == 1 and json.loads(data)["type"] == "exit": break
    w.close()
def timed(f, label):
    for _ in range(10): f()
    ms = []
    for _ in range(n):
        t = time.perf_counter(); f(); ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    print("%s exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms" % (label, n, ms[n // 2], ms[min(n - 1, int(0.99 * n))], ms[-1]))
if mode == "rest": timed(rest, "REST (wait)")
if mode == "ws": timed(ws_once, "WebSocket attach")
if mode == "rss":
    idle = rss()
    socks = []
    for i in range(50):
        s, d = call("POST", "/v1/sandboxes/srvbench/exec", {"argv": ["sh", "-c", "read x"]})
        sock = socket.socket(socket.AF_UNIX); sock.connect(path)
        w = websocket.WebSocket(); w.connect("ws://moat/v1/sandboxes/srvbench/execs/%s/attach" % json.loads(d)["id"], socket=sock)
        w.recv(); socks.append(w)
    time.sleep(1)
    held = rss()
    for w in socks: w.send_binary(b"\n")
    for w in socks:
        while True:
            op, data = w.recv_data()
            if op == 1 and json.loads(data)["type"] == "exit": break
        w.close()
    print("server RSS: idle %.1f MiB, with 50 attached commands %.1f MiB" % (idle / 1024, held / 1024))
PY
}

echo "# moat serve: exec round trip and RSS, $(date -u +%Y-%m-%d), $(nproc) cores, TCG"
echo
echo '```'
clients setup
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  "$build/bin/moat_bench_exec" "$n" "$build/share/moat/rootfs-busybox"
  clients rest
  clients ws
done
clients rss
echo '```'
