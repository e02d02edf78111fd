#!/usr/bin/env bash
# Installs the npm packages of the E2B tests (tests/e2b/package-lock.json,
# exact versions) into DIR/node_modules, outside the source tree: once, and
# again when the lock file changes. Needs the npm registry.
# usage: npm-ci.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: npm-ci.sh DIR}
mkdir -p "$dir"
stamp=$dir/.lock.sha256
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ -d $dir/node_modules && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
