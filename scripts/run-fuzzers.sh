#!/usr/bin/env bash
# Runs each libFuzzer target in BUILD/fuzz for SECONDS, one after another,
# seeded from fuzz/corpus/<name>/. New inputs go to a scratch corpus, so the
# in-repo corpora stay small; with FUZZ_MERGE=1 (`make fuzz-long`) only the
# new inputs that reach code the seeds do not are then added to
# fuzz/corpus/<name>/ (libFuzzer's -merge=1; the named seeds stay). Fails if
# any target finds a crash.
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
    if [[ ${FUZZ_MERGE:-0} == 1 ]]; then
      before=$(ls "$seeds" | wc -l)
      if "$bin" -merge=1 -max_len=1100000 -rss_limit_mb=2048 "$seeds" "$scratch" \
           2>"$build/fuzz/$name.merge.log"; then
        echo "   corpus $name: $before seeds, $(($(ls "$seeds" | wc -l) - before)) added"
      else
        echo "!! merging new inputs into the corpus of $name failed; see $build/fuzz/$name.merge.log" >&2
        status=1
      fi
    fi
  fi
  rm -rf "$scratch"
done
exit $status
