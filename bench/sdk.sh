#!/usr/bin/env bash
# The front ends side by side (docs/sdk.md): exec round trip of `true` on a
# running sandbox through the C++ API, the C ABI, Python (sync and asyncio)
# and Node, p50/p99 over N calls each, in ROUNDS alternating rounds; then a
# 50 MiB file written into the guest and read back through each SDK against
# `moat cp` in and out. Prints a Markdown report.
# usage: bench/sdk.sh [BUILD_DIR] [N] [ROUNDS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-200}
rounds=${3:-2}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/moat-bench-sdk.XXXXXX)
trap 'rm -rf "$work"' EXIT
export MOAT_HOME=$work/home
export MOAT_LIBRARY=$build/lib/libmoat.so.1
export MOAT_NODE_ADDON=$build/lib/node/moat.node
export PYTHONPATH=$top/sdk/python
py=/usr/bin/python3

python_sync() {
  "$py" - "$n" <<'PY'
import sys, time, moat
n = int(sys.argv[1])
with moat.Sandbox.create() as sb:
    for _ in range(10): sb.exec(["true"])
    ms = []
    for _ in range(n):
        t = time.perf_counter(); sb.exec(["true"]); ms.append((time.perf_counter() - t) * 1e3)
ms.sort()
print("python sync exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms" % (n, ms[n // 2], ms[min(n - 1, int(0.99 * n))], ms[-1]))
PY
}

python_async() {
  "$py" - "$n" <<'PY'
import asyncio, sys, time, moat
n = int(sys.argv[1])
async def main():
    async with await moat.AsyncSandbox.create() as sb:
        for _ in range(10): await sb.exec(["true"])
        ms = []
        for _ in range(n):
            t = time.perf_counter(); await sb.exec(["true"]); ms.append((time.perf_counter() - t) * 1e3)
    return ms
ms = sorted(asyncio.run(main()))
print("python async exec true: n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms" % (n, ms[n // 2], ms[min(n - 1, int(0.99 * n))], ms[-1]))
PY
}

node_exec() {
  node - "$n" <<'JS'
const moat = require(process.env.PYTHONPATH.replace(/python$/, 'node'));
const n = Number(process.argv[2]);
(async () => {
  const sb = await moat.Sandbox.create();
  for (let i = 0; i < 10; i++) await sb.exec(['true']);
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint(); await sb.exec(['true']); ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  await sb.close();
  ms.sort((a, b) => a - b);
  console.log(`node exec true: n=${n} p50=${ms[n >> 1].toFixed(2)} ms p99=${ms[Math.min(n - 1, Math.floor(0.99 * n))].toFixed(2)} ms max=${ms[n - 1].toFixed(2)} ms`);
})();
JS
}

echo "# Front ends: exec round trip and 50 MiB files, $(date -u +%Y-%m-%d), $(nproc) cores, TCG"
echo
echo '```'
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  "$build/bin/moat_bench_exec" "$n" "$build/share/moat/rootfs-busybox"
  "$build/bin/moat_bench_exec_c" "$n"
  python_sync
  python_async
  node_exec
done
echo '```'

# 50 MiB through each SDK (write then read back, checked by sha256) and
# through `moat cp` in and out, on one running sandbox each.
head -c $((50 * 1024 * 1024)) /dev/urandom >"$work/big"
echo
echo '```'
for r in $(seq 1 "$rounds"); do
  "$py" - "$work/big" <<'PY'
import hashlib, sys, time, moat
data = open(sys.argv[1], "rb").read()
with moat.Sandbox.create() as sb:
    t = time.perf_counter(); sb.files.write("/tmp/big", data); w = time.perf_counter() - t
    t = time.perf_counter(); back = sb.files.read("/tmp/big"); rd = time.perf_counter() - t
assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
print("python 50 MiB: write %.0f ms, read %.0f ms" % (w * 1e3, rd * 1e3))
PY
  node - "$work/big" <<'JS'
const moat = require(process.env.PYTHONPATH.replace(/python$/, 'node'));
const data = require('fs').readFileSync(process.argv[2]);
(async () => {
  const sb = await moat.Sandbox.create();
  let t = process.hrtime.bigint(); await sb.files.write('/tmp/big', data); const w = Number(process.hrtime.bigint() - t) / 1e6;
  t = process.hrtime.bigint(); const back = await sb.files.read('/tmp/big'); const rd = Number(process.hrtime.bigint() - t) / 1e6;
  await sb.close();
  if (!back.equals(data)) throw new Error('read back differs');
  console.log(`node 50 MiB: write ${w.toFixed(0)} ms, read ${rd.toFixed(0)} ms`);
})();
JS
  id=$("$build/bin/moat" run -d -- sleep 3600 2>/dev/null | tail -n 1)
  t0=$(date +%s%N); "$build/bin/moat" cp "$work/big" "$id:/tmp/big"; t1=$(date +%s%N)
  "$build/bin/moat" cp "$id:/tmp/big" "$work/back"; t2=$(date +%s%N)
  cmp -s "$work/big" "$work/back"
  rm -f "$work/back"
  "$build/bin/moat" rm -f "$id" >/dev/null
  echo "moat cp 50 MiB: in $(( (t1 - t0) / 1000000 )) ms, out $(( (t2 - t1) / 1000000 )) ms"
done
echo '```'
