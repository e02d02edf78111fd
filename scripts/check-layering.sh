#!/usr/bin/env bash
# The include rules of docs/architecture.md that a compiler does not enforce:
#  - front ends (src/cli) use libmoat only through include/moat/: every
#    project header they include is "moat/..." or their own "cli/...";
#  - the guest agent includes nothing of the host.
# Prints each offending line and exits 1 if there is one.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
bad=0
check() {  # folder, allowed-prefix regex, rule
  local dir="$1" allowed="$2" rule="$3" hits
  hits=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$dir" --include='*.h' --include='*.cpp' \
           | grep -vE "#[[:space:]]*include[[:space:]]*\"($allowed)" || true)
  if [[ -n "$hits" ]]; then
    echo "$rule:"
    echo "$hits" | sed "s|^$root/||"
    bad=1
  fi
}
check src/cli 'moat/|cli/' "src/cli may include only include/moat/ and its own headers"
check src/agent 'moat/result\.h|agent/|proto/|util/write_all\.h|util/path_names\.h|util/result\.h|util/unique_fd\.h' \
  "src/agent may include only the guest half of the protocol and header-only utilities"
exit $bad
