# Shared by the benchmark scripts (sourced): timing a host command and the
# median of samples.

# Runs a command with its output discarded and prints how long it took:
# `timed` in seconds (3 decimals), `timed_ms` in milliseconds (2 decimals).
# A failing command's stderr is shown and the call fails.
timed_scaled() {  # scale format command...
  local scale=$1 format=$2
  shift 2
  local t0=$EPOCHREALTIME err
  err=$(mktemp)
  if ! "$@" >/dev/null 2>"$err"; then
    cat "$err" >&2
    rm -f "$err"
    return 1
  fi
  rm -f "$err"
  awk -v a="$t0" -v b="$EPOCHREALTIME" -v s="$scale" -v f="$format" 'BEGIN{printf f "\n", (b-a)*s}'
}
timed() { timed_scaled 1 "%.3f" "$@"; }
timed_ms() { timed_scaled 1000 "%.2f" "$@"; }

# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
