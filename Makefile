# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   - create .venv, install, run an optimization through the real worker
#   make test   - create .venv, install, lint, type-check and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= test,postgres,redis,samplers,bench

.PHONY: venv demo test lint typecheck pytest elixir-test bench fuzz soak dashboard schema clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

test: venv lint typecheck pytest elixir-test

lint: venv
	$(BIN)/ruff check bridge_worker tests scripts

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The reference Elixir client against the real worker (installs Elixir with apt when root).
elixir-test: venv
	bash scripts/elixir_test.sh

bench: venv
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

fuzz: venv
	$(BIN)/python scripts/fuzz.py $(FUZZ_ARGS)

soak: venv
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

# optuna-dashboard on the same storage the workers use: make dashboard STORAGE=sqlite:///x.db
dashboard: venv
	@test -n "$(STORAGE)" || { echo "usage: make dashboard STORAGE=<url>"; exit 2; }
	$(BIN)/python -m pip install --quiet -e '.[dashboard]'
	$(BIN)/optuna-dashboard --host 127.0.0.1 --port $(or $(PORT),8080) "$(STORAGE)"

schema: venv
	$(BIN)/python scripts/gen_schema.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache results .elixir-home clients/elixir/_build
