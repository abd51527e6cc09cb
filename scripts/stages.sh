# Sourced by test_stages.sh and test_stress.sh: a command timed into one summary line, and the
# summary with its verdict. Every command runs even when an earlier one failed, so one red stage
# never hides another.

# timed FILE LABEL COMMAND...: runs COMMAND, appends "LABEL ok|FAILED  N s" to FILE, returns its
# status.
timed() {
  local file=$1 label=$2
  shift 2
  local start=$SECONDS status=0 verdict=ok
  "$@" || status=$?
  [ "$status" = 0 ] || verdict=FAILED
  printf '%-22s %-6s %4d s\n' "$label" "$verdict" $((SECONDS - start)) >>"$file"
  return "$status"
}

# summarize NAME PASSED_TEXT FILE...: prints the lines of the FILEs in order, then NAME's verdict;
# returns 1 when any line says FAILED.
summarize() {
  local name=$1 passed=$2
  shift 2
  echo
  cat "$@"
  if cat "$@" | grep -q ' FAILED '; then
    echo "$name: FAILED"
    return 1
  fi
  echo "$name: $passed"
}
