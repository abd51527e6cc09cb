#!/usr/bin/env bash
# CI for the reference Elixir client: formatting, warnings, dialyzer, then the ExUnit suite against
# the real worker in .venv with coverage (at least 90 %, enforced by mix.exs test_coverage).
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
home="$root/.elixir-home"
mkdir -p "$home/mix"
cd clients/elixir
export HOME="$home" MIX_HOME="$home/mix" LANG=C.UTF-8 LC_ALL=C.UTF-8
export OPTUNA_BRIDGE_PYTHON="$root/${VENV:-.venv}/bin/python"

if [ $# -gt 0 ]; then
  exec mix test "$@"
fi

echo "elixir-test: mix format --check-formatted" >&2
mix format --check-formatted
echo "elixir-test: mix compile --warnings-as-errors" >&2
MIX_ENV=dev mix compile --force --warnings-as-errors

# Dialyzer on the client's own modules. The PLT of the OTP and Elixir applications it uses is
# built once (a few minutes) and cached in the ignored .dialyzer/ folder; it is rebuilt when
# the Erlang/Elixir installation changes (the key names both versions).
elixir_lib=$(elixir -e 'IO.write(:code.lib_dir(:elixir) |> Path.dirname())')
otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
plt=".dialyzer/otp${otp}-elixir$(elixir -e 'IO.write(System.version())')-crypto.plt"
# Mix too, for the client's Mix task (`mix optuna_bridge.install`); added to the base PLT when a
# cached one exists (seconds), else built with it.
mix_plt="${plt%.plt}-mix.plt"
mkdir -p .dialyzer
if [ ! -f "$mix_plt" ]; then
  if [ ! -f "$plt" ]; then
    echo "elixir-test: building the dialyzer PLT $plt (once; takes minutes)" >&2
    ERL_LIBS="$elixir_lib" dialyzer --build_plt --output_plt "$plt.tmp" --apps erts kernel stdlib crypto \
      -r "$elixir_lib/elixir/ebin" "$elixir_lib/logger/ebin" >/dev/null || [ -f "$plt.tmp" ]
    mv "$plt.tmp" "$plt"
  fi
  echo "elixir-test: adding mix to the dialyzer PLT ($mix_plt)" >&2
  ERL_LIBS="$elixir_lib" dialyzer --add_to_plt --plt "$plt" --output_plt "$mix_plt.tmp" \
    -r "$elixir_lib/mix/ebin" >/dev/null || [ -f "$mix_plt.tmp" ]
  mv "$mix_plt.tmp" "$mix_plt"
fi
plt="$mix_plt"
echo "elixir-test: dialyzer" >&2
ERL_LIBS="$elixir_lib" dialyzer --plt "$plt" --no_check_plt _build/dev/lib/optuna_bridge/ebin

echo "elixir-test: mix test --cover (threshold 90 %)" >&2
mix test --cover

echo "elixir-test: a fresh Mix project installs the worker and runs the quick start" >&2
bash "$root/scripts/elixir_fresh_project.sh"
