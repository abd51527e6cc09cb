#!/usr/bin/env bash
# Runs each stage of `make test` even when an earlier one fails, so one red stage never hides
# another; prints one summary line per stage and exits non-zero if any stage failed.
# Usage: test_stages.sh "<make command>" stage...
set -uo pipefail
make_cmd=$1
shift
summary=()
failed=0
for stage in "$@"; do
  start=$SECONDS
  if $make_cmd "$stage"; then verdict=ok; else verdict=FAILED; failed=1; fi
  summary+=("$(printf 'stage %-12s %-6s %4d s' "$stage" "$verdict" $((SECONDS - start)))")
done
echo
printf '%s\n' "${summary[@]}"
if [ "$failed" = 0 ]; then echo "make test: every stage passed"; else echo "make test: FAILED"; fi
exit "$failed"
