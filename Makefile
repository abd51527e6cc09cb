# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   - create .venv from the lock, run an optimization through the real worker
#   make test   - create .venv from the lock; lint, type-check, Python suite, Elixir suite
#
# Every install comes from requirements/lock.txt (hashes checked by pip, so a tampered or
# re-published file fails the install). `make lock` regenerates it deliberately; `make test-latest`
# and `make test-oldest` run the suite on the newest / oldest versions pyproject.toml allows,
# in their own virtualenvs, without touching the lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
LOCK ?= requirements/lock.txt
STAMP = $(VENV)/.installed-stamp
EXTRAS := test postgres redis samplers bench plots grpc
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# What pip and uv resolve for: the platform CI and every developer machine run.
TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
COMPILE = $(UV) pip compile pyproject.toml requirements/build.in $(addprefix --extra ,$(EXTRAS)) \
	--generate-hashes $(TARGET) --quiet

.PHONY: venv demo test lint typecheck pytest elixir-test lock upgrade-lock test-latest test-oldest \
	bench bench-curves fuzz soak dashboard schema clean

venv: $(STAMP)

# The venv is rebuilt from scratch whenever the lock changes, so it holds exactly the lock:
# --require-hashes refuses any file whose hash is not in it, --no-deps refuses anything the lock
# does not name, and the project itself is built with the locked setuptools (no isolation).
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

# Every stage runs even when an earlier one fails; one summary line per stage, then the verdict.
test: venv
	@bash scripts/test_stages.sh "$(MAKE) --no-print-directory VENV=$(VENV) LOCK=$(LOCK)" \
		lint typecheck pytest elixir-test

lint: venv
	$(BIN)/ruff check bridge_worker tests scripts

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The reference Elixir client against the real worker (installs Elixir with apt when root).
elixir-test: venv
	VENV=$(VENV) bash scripts/elixir_test.sh

$(UV): requirements/uv.txt
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements/uv.txt

# Re-resolve after pyproject.toml changed: pins already in the lock are kept where they still fit.
lock: $(UV)
	$(COMPILE) -o requirements/lock.txt

# The deliberate upgrade: newest versions pyproject.toml allows. Run `make test-latest` first,
# then this, review the diff of requirements/lock.txt, run `make test`, commit.
upgrade-lock: $(UV)
	$(COMPILE) --upgrade -o requirements/lock.txt

# Drift early warning: the suite on the newest allowed versions (never part of `make test`).
test-latest: $(UV)
	mkdir -p build
	$(COMPILE) --upgrade --no-header -o build/latest.lock.txt
	$(MAKE) --no-print-directory test VENV=.venv-latest LOCK=build/latest.lock.txt

# Proof of pyproject's lower bounds: the suite on the oldest version of each direct dependency.
test-oldest: $(UV)
	mkdir -p build
	$(COMPILE) --resolution lowest-direct --no-header -o build/oldest.lock.txt
	$(MAKE) --no-print-directory test VENV=.venv-oldest LOCK=build/oldest.lock.txt

bench: venv
	$(BIN)/python scripts/bench_io.py $(BENCH_ARGS)

bench-curves: venv
	$(BIN)/python scripts/bench.py $(BENCH_CURVES_ARGS)

fuzz: venv
	$(BIN)/python scripts/fuzz.py $(FUZZ_ARGS)

soak: venv
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

# optuna-dashboard on the same storage the workers use: make dashboard STORAGE=sqlite:///x.db
# (a tool beside the lock, installed on demand into its own venv).
dashboard: venv
	@test -n "$(STORAGE)" || { echo "usage: make dashboard STORAGE=<url>"; exit 2; }
	test -x .venv-dashboard/bin/optuna-dashboard || { $(PYTHON) -m venv .venv-dashboard && \
		.venv-dashboard/bin/python -m pip install --quiet -e '.[dashboard]'; }
	.venv-dashboard/bin/optuna-dashboard --host 127.0.0.1 --port $(or $(PORT),8080) "$(STORAGE)"

schema: venv
	$(BIN)/python scripts/gen_schema.py

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest .venv-dashboard $(TOOLS) build .pytest_cache \
		.mypy_cache .ruff_cache results .elixir-home clients/elixir/_build
