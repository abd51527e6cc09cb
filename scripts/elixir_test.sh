#!/usr/bin/env bash
# CI for the reference Elixir client: formatting, warnings, the ExUnit suite against the real worker
# in .venv with coverage (at least 90 %, enforced by mix.exs test_coverage), dialyzer, then a fresh
# Mix project that installs the worker (scripts/elixir_fresh_project.sh).
# Installs Elixir and Debian's erlang-dialyzer with apt when missing and we are root; otherwise
# says how and skips (outside CI) or fails (in CI, where the pair must be proven on every change).
# Arguments are passed to `mix test` (then coverage is not enforced: a subset covers less).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
need_apt=()
command -v mix >/dev/null 2>&1 || need_apt+=(elixir)
command -v dialyzer >/dev/null 2>&1 || need_apt+=(erlang-dialyzer)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "elixir-test: installing ${need_apt[*]} with apt-get" >&2
    # DPkg::Lock::Timeout: the Python suite, run alongside, may be installing its servers.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o DPkg::Lock::Timeout=600 "${need_apt[@]}" >/dev/null
  elif [ "${CI:-}" = true ]; then
    echo "elixir-test: ${need_apt[*]} not found and cannot install (not root)" >&2
    exit 1
  else
    echo "elixir-test: SKIPPED - ${need_apt[*]} not found. Install them (sudo apt-get install -y ${need_apt[*]}) and re-run." >&2
    exit 0
  fi
fi
# pip keeps its downloads in the real user's cache (HOME changes below), so the fresh-project
# venv install is fast and offline after the first run.
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
real_home=$HOME
home="$root/.elixir-home"
mkdir -p "$home/mix"
cd clients/elixir
export HOME="$home" MIX_HOME="$home/mix" LANG=C.UTF-8 LC_ALL=C.UTF-8
export OPTUNA_BRIDGE_PYTHON="$root/${VENV:-.venv}/bin/python"

if [ $# -gt 0 ]; then
  exec mix test "$@"
fi

# Dialyzer's PLT of the OTP and Elixir applications the client uses (and Mix, for the client's Mix
# task) depends only on the Erlang/Elixir installation, never on this tree: like pip's cache above
# and dialyxir's core PLTs, it is kept per user, keyed by both versions, so every clone on the
# machine shares it. When missing it is built (minutes of CPU) in the background while the suite
# runs; dialyzer waits for it after the suite.
elixir_lib=$(elixir -e 'IO.write(:code.lib_dir(:elixir) |> Path.dirname())')
otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
plt_dir="${OPTUNA_BRIDGE_PLT_DIR:-${XDG_CACHE_HOME:-$real_home/.cache}/optuna-bridge/dialyzer}"
plt="$plt_dir/otp${otp}-elixir$(elixir -e 'IO.write(System.version())')-crypto-mix.plt"
plt_log="$root/build/test-logs/elixir-plt.log"

# Written next to the PLT under a name of its own and renamed when complete, so a concurrent or
# interrupted build never leaves half a PLT. Exit status 2 is dialyzer's "warnings", which a PLT
# of OTP itself has: the file is what tells success.
build_plt() {
  local part="$plt.part$BASHPID"
  mkdir -p "$plt_dir"
  echo "elixir-test: building the dialyzer PLT $plt (once per Erlang/Elixir installation)"
  ERL_LIBS="$elixir_lib" dialyzer --build_plt --output_plt "$part" --apps erts kernel stdlib crypto \
    -r "$elixir_lib/elixir/ebin" "$elixir_lib/logger/ebin" "$elixir_lib/mix/ebin" &
  dialyzer_pid=$!
  trap 'kill "$dialyzer_pid" 2>/dev/null; wait "$dialyzer_pid"; rm -f "$part"; exit 143' TERM
  wait "$dialyzer_pid" || true
  [ -f "$part" ] && mv "$part" "$plt"
}

# Background jobs (the PLT build, the fresh project) end with the script, whatever ends it.
plt_job=
fresh_job=
trap 'for job in $plt_job $fresh_job; do kill "$job" 2>/dev/null || true; done' EXIT

# Every step runs even when an earlier one failed (one red step never hides another); the script
# fails at the end if any did (so from here on `set -e` is off: each step's status is kept).
set +e
failed=()
step() {
  local name=$1 status=0
  shift
  echo "elixir-test: $name" >&2
  "$@" || status=$?
  [ "$status" = 0 ] || failed+=("$name")
  return "$status"
}

if [ ! -f "$plt" ]; then
  mkdir -p "$(dirname "$plt_log")"
  build_plt >"$plt_log" 2>&1 &
  plt_job=$!
  echo "elixir-test: building the dialyzer PLT in the background (log: $plt_log)" >&2
fi

step "mix format --check-formatted" mix format --check-formatted
step "mix compile --warnings-as-errors" env MIX_ENV=dev mix compile --force --warnings-as-errors

# The fresh Mix project (mostly waiting on pip and on its worker) runs while the suite does, once
# `make dist` has written the priv/python it reads (package_test.exs reads that folder too, so
# nothing rewrites it while the suite runs).
fresh_log="$root/build/test-logs/elixir-fresh-project.log"
mkdir -p "$(dirname "$fresh_log")"
if step "make dist (the wheel the client ships in priv/python)" \
  make -C "$root" --no-print-directory dist VENV="${VENV:-.venv}" >/dev/null; then
  bash "$root/scripts/elixir_fresh_project.sh" --dist-made >"$fresh_log" 2>&1 &
  fresh_job=$!
  echo "elixir-test: a fresh Mix project, in the background (log: $fresh_log)" >&2
fi

step "mix test --cover (threshold 90 %)" mix test --cover
if [ -n "$plt_job" ]; then
  echo "elixir-test: waiting for the dialyzer PLT" >&2
  wait "$plt_job"
  plt_job=
  cat "$plt_log" >&2
fi
if [ -f "$plt" ]; then
  step dialyzer env ERL_LIBS="$elixir_lib" dialyzer --plt "$plt" --no_check_plt \
    _build/dev/lib/optuna_bridge/ebin
else
  echo "elixir-test: dialyzer: the PLT build failed (log above)" >&2
  failed+=(dialyzer)
fi
if [ -n "$fresh_job" ]; then
  step "a fresh Mix project installs the worker and runs the quick start" wait "$fresh_job"
  fresh_job=
  cat "$fresh_log" >&2
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'elixir-test: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
