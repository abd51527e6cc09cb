#!/usr/bin/env bash
# The stages of `make test`, all at the same time: they are independent (the Python suite and the
# Elixir suite mostly wait on real workers and servers, so together they take about as long as
# the longer one). Each stage's output goes to build/test-logs/STAGE.log and is printed whole when
# the stage ends, so outputs never interleave; then one summary line per stage, in the order
# given, and the verdict. Every stage runs even when another fails.
# Usage: test_stages.sh "<make command>" stage...
set -uo pipefail
here=$(dirname "$0")
# shellcheck source=scripts/stages.sh
source "$here/stages.sh"
make_cmd=$1
shift
logs=build/test-logs
mkdir -p "$logs"
declare -A stage_of=()
lines=()
for stage in "$@"; do
  rm -f "$logs/$stage.log" "$logs/$stage.line"
  lines+=("$logs/$stage.line")
  # shellcheck disable=SC2086
  timed "$logs/$stage.line" "stage $stage" $make_cmd "$stage" >"$logs/$stage.log" 2>&1 &
  stage_of[$!]=$stage
  echo "stage $stage: started (output in $logs/$stage.log)"
done
while [ ${#stage_of[@]} -gt 0 ]; do
  wait -n -p done_pid "${!stage_of[@]}"
  stage=${stage_of[$done_pid]}
  unset "stage_of[$done_pid]"
  echo
  echo "===== stage $stage: $(cat "$logs/$stage.line" | awk '{print $3}') ====="
  cat "$logs/$stage.log"
done
summarize "make test" "every stage passed" "${lines[@]}"
