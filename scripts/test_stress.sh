#!/usr/bin/env bash
# `make test-stress`: the test suites while scripts/cpu_hog.py keeps every core busy, several rounds
# in a row; any red round fails the run. A test that passes idle but fails here has a deadline
# that races the machine (a defect: derive it from a baseline measured in the same run).
# Usage: test_stress.sh ROUNDS "<pytest args>" "<mix test args>"
#   an empty pytest/mix argument runs that whole suite; "-" skips that suite.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
pytest_args=${2:-}
mix_args=${3:-}
venv=${VENV:-.venv}
"$venv/bin/python" scripts/cpu_hog.py &
hog=$!
# shellcheck source=scripts/stages.sh
source scripts/stages.sh
summary=$(mktemp)
trap 'kill $hog 2>/dev/null; wait $hog 2>/dev/null; rm -f "$summary"' EXIT
for round in $(seq 1 "$rounds"); do
  if [ "$pytest_args" != "-" ]; then
    # shellcheck disable=SC2086
    timed "$summary" "round $round pytest" "$venv/bin/python" -m pytest -q -p no:cacheprovider $pytest_args
  fi
  if [ "$mix_args" != "-" ]; then
    # shellcheck disable=SC2086
    timed "$summary" "round $round elixir" env VENV="$venv" bash scripts/elixir_test.sh $mix_args
  fi
done
summarize test-stress "every round passed under load" "$summary"
