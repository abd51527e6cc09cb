#!/usr/bin/env bash
# The client as an adopter gets it: a fresh Mix project whose only dependency is the client (by
# path), no Python configured by hand. It runs `mix optuna_bridge.install` (the second run must
# change nothing), then the client README's quick-start blocks as they are written.
# Run by scripts/elixir_test.sh (full run); needs mix and python3.11 (or python3 >= 3.11) on PATH.
# The venv install reuses pip's cache (PIP_CACHE_DIR), so after the first run it is offline.
# Usage: elixir_fresh_project.sh [--dist-made]  (--dist-made: `make dist` already ran; the client's
# priv/python is read, never rewritten, so the suite may run meanwhile)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" != --dist-made ]; then
  echo "elixir-fresh-project: make dist (the wheel the client ships in priv/python)" >&2
  make -C "$root" --no-print-directory dist VENV="${VENV:-.venv}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset OPTUNA_BRIDGE_PYTHON OPTUNA_BRIDGE_VENV
cd "$work"
mix new fresh_app >/dev/null
cd fresh_app
cat >mix.exs <<MIX
defmodule FreshApp.MixProject do
  use Mix.Project

  def project,
    do: [app: :fresh_app, version: "0.1.0", elixir: "~> 1.14", deps: [{:optuna_bridge, path: "$root/clients/elixir"}]]

  def application, do: [extra_applications: [:logger]]
end
MIX
mix deps.get >/dev/null
echo "elixir-fresh-project: mix optuna_bridge.install" >&2
first=$(mix optuna_bridge.install)
echo "$first" >&2
grep -q "created $PWD/_build/optuna_bridge/venv" <<<"$first"
grep -q "hashes checked" <<<"$first"
second=$(mix optuna_bridge.install)
echo "$second" >&2
grep -q "is up to date" <<<"$second"
if grep -q "created" <<<"$second"; then
  echo "elixir-fresh-project: the second install rebuilt the venv" >&2
  exit 1
fi
# The README quick start, unchanged, then a check that it ran on the installed venv.
awk '/<!-- quick-start -->/{q=1; next} q==1 && /^```elixir/{q=2; next} q==2 && /^```/{q=0; print ""; next} q==2{print}' \
  "$root/clients/elixir/README.md" >quick_start.exs
cat >>quick_start.exs <<'EXS'
venv_python = Path.expand("_build/optuna_bridge/venv/bin/python")
^venv_python = OptunaBridge.Worker.python([])
IO.puts("fresh project: quick start ran on #{venv_python}")
EXS
echo "elixir-fresh-project: mix run quick_start.exs" >&2
status=0
mix run quick_start.exs 2>quick_start.err || status=$?
cat quick_start.err >&2
[ "$status" -eq 0 ] || exit "$status"
# The blocks run in order as one script, as a reader pastes them: not one compiler warning.
if grep -q "warning:" quick_start.err; then
  echo "elixir-fresh-project: the README quick start compiles with warnings" >&2
  exit 1
fi
