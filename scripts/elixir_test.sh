#!/usr/bin/env bash
# Runs the reference Elixir client's ExUnit suite against the real worker in .venv.
# Installs Elixir with apt when mix is missing and we are root; otherwise says how and skips
# (outside CI) or fails (in CI, where the pair must be proven on every change).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if ! command -v mix >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "elixir-test: installing Elixir with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq elixir >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "elixir-test: mix not found and cannot install it (not root)" >&2
    exit 1
  else
    echo "elixir-test: SKIPPED - mix not found. Install Elixir (sudo apt-get install -y elixir) and re-run." >&2
    exit 0
  fi
fi
home="$root/.elixir-home"
mkdir -p "$home/mix"
cd clients/elixir
export HOME="$home" MIX_HOME="$home/mix" LANG=C.UTF-8 LC_ALL=C.UTF-8
export OPTUNA_BRIDGE_PYTHON="$root/${VENV:-.venv}/bin/python"
mix test "$@"
