#!/usr/bin/env bash
# Runs each libFuzzer target in BUILD/fuzz for SECONDS, seeded from
# fuzz/corpus/<name>/. New inputs go to a scratch corpus, so the in-repo
# corpora stay small. Fails if any target finds a crash.
set -euo pipefail
build=${1:?usage: run-fuzzers.sh BUILD SECONDS}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$build"/fuzz/fuzz_*; do
  [[ -x $bin ]] || continue
  name=${bin##*/fuzz_}
  scratch=$(mktemp -d)
  seeds=$root/fuzz/corpus/$name
  mkdir -p "$seeds"
  echo "== fuzz $name for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -max_len=1100000 -rss_limit_mb=2048 \
       -artifact_prefix="$build/fuzz/$name-" "$scratch" "$seeds" 2>"$build/fuzz/$name.log"; then
    echo "!! fuzz $name failed; see $build/fuzz/$name.log" >&2
    tail -n 30 "$build/fuzz/$name.log" >&2
    status=1
  else
    tail -n 2 "$build/fuzz/$name.log"
  fi
  rm -rf "$scratch"
done
exit $status
