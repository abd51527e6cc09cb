#!/usr/bin/env bash
# Runs a benchmark of the reference Elixir client against the real worker in .venv:
#   bash scripts/elixir_bench.sh [bench/checkpoints.exs]   (TRIALS=1000 ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
home="$root/.elixir-home"
mkdir -p "$home/mix"
cd clients/elixir
export HOME="$home" MIX_HOME="$home/mix" LANG=C.UTF-8 LC_ALL=C.UTF-8
export OPTUNA_BRIDGE_PYTHON="$root/${VENV:-.venv}/bin/python"
MIX_ENV=dev mix run "${1:-bench/checkpoints.exs}"
