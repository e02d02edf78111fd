#!/usr/bin/env bash
# The E2B-compatible API against moat's own Node SDK (docs/e2b.md), one run,
# the same image (tests/fixtures/make-e2b-base.sh) and the same command as
# E2B runs it (/bin/bash -l -c CMD, as "user"):
#   - commands.run('true') on a running sandbox, p50/p99 over N calls;
#   - Sandbox.create() to the end of the first command, p50 over C creates
#     (each sandbox killed before the next).
# Alternating rounds, e2b SDK then moat SDK. Prints a Markdown report.
# usage: bench/e2b.sh [BUILD_DIR] [N] [C] [ROUNDS]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-100}
creates=${3:-20}
rounds=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/moat-bench-e2b.XXXXXX)
cleanup() {
  [[ -n ${server:-} ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  ids=$(MOAT_HOME=$work/home "$build/bin/moat" ls -q 2>/dev/null || true)
  [[ -n $ids ]] && MOAT_HOME=$work/home "$build/bin/moat" rm -f $ids >/dev/null 2>&1 || true
  "$top/tests/fixtures/local-registry.sh" stop "$work/registry" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export MOAT_HOME=$work/home
export MOAT_NODE_ADDON=$build/lib/node/moat.node
mkdir -p "$MOAT_HOME"

"$top/tests/e2b/npm-ci.sh" "$build/e2b-node" >&2
layout=$("$top/tests/fixtures/make-e2b-base.sh")
"$top/tests/fixtures/local-registry.sh" start "$work/registry" >/dev/null
ref=$("$top/tests/fixtures/local-registry.sh" push "$work/registry" "$layout" base test/e2b-base)
echo "{\"templates\": {\"base\": {\"image\": \"$ref\", \"user\": \"user\", \"insecure_registry\": true, \"memory_mib\": 512}}}" \
  >"$work/templates.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$build/bin/moat" serve --listen "127.0.0.1:$port" --e2b --e2b-templates "$work/templates.json" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/serve.log" && break; sleep 0.1; done
"$build/bin/moat" image pull --insecure "$ref" >/dev/null 2>&1

export E2B_API_URL=http://127.0.0.1:$port E2B_SANDBOX_URL=http://127.0.0.1:$port
export E2B_API_KEY=$(cat "$MOAT_HOME/server.token")
export BENCH_REF=$ref BENCH_N=$n BENCH_C=$creates
export NODE_PATH=$build/e2b-node/node_modules MOAT_SDK=$top/sdk/node

run_js() {
  node - "$1" <<'JS'
const which = process.argv[2];
const n = Number(process.env.BENCH_N), c = Number(process.env.BENCH_C);
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))];
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sdk = which === 'e2b' ? (() => {
  const { Sandbox } = require('e2b');
  return {
    create: () => Sandbox.create(),
    run: (sb, cmd) => sb.commands.run(cmd),
    kill: (sb) => sb.kill(),
  };
})() : (() => {
  const moat = require(process.env.MOAT_SDK);
  return {
    create: () => moat.Sandbox.create({ image: process.env.BENCH_REF, insecureRegistry: true, memoryMib: 512 }),
    run: (sb, cmd) => sb.exec(['/bin/bash', '-l', '-c', cmd], { user: 'user', cwd: '/home/user' }),
    kill: (sb) => sb.close(),
  };
})();
(async () => {
  const sb = await sdk.create();
  for (let i = 0; i < 5; i++) await sdk.run(sb, 'true');
  const ms = [];
  for (let i = 0; i < n; i++) { const t = now(); await sdk.run(sb, 'true'); ms.push(now() - t); }
  await sdk.kill(sb);
  const cs = [];
  for (let i = 0; i < c; i++) {
    const t = now(); const s = await sdk.create(); await sdk.run(s, 'true'); cs.push(now() - t);
    await sdk.kill(s);
  }
  console.log(`${which.padEnd(4)} commands.run('true'): n=${n} p50=${pct(ms, 0.5).toFixed(1)} ms p99=${pct(ms, 0.99).toFixed(1)} ms` +
    ` | create to first command: n=${c} p50=${pct(cs, 0.5).toFixed(0)} ms`);
})().catch((e) => { console.error(e); process.exit(1); });
JS
}

echo "# E2B API vs moat's Node SDK, $(date -u +%Y-%m-%d), $(nproc) cores, TCG"
echo
echo '```'
for r in $(seq 1 "$rounds"); do
  echo "round $r"
  run_js e2b
  run_js moat
done
echo '```'
