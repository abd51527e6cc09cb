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
EXTRAS := test postgres redis samplers bench plots grpc dashboard
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# What pip and uv resolve for: the platform CI and every developer machine run.
TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28
COMPILE = $(UV) pip compile pyproject.toml requirements/build.in $(addprefix --extra ,$(EXTRAS)) \
	--generate-hashes $(TARGET) --quiet

.PHONY: venv demo test lint format typecheck pytest elixir-test bytecode lock upgrade-lock test-latest test-oldest \
	bench bench-curves fuzz soak test-stress test-stress-ci dashboard schema dist clean

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

# ruff is both the linter and the formatter: `make format` rewrites, `make lint` fails on any
# file the formatter would change.
lint: venv
	$(BIN)/ruff check bridge_worker tests scripts
	$(BIN)/ruff format --check bridge_worker tests scripts

format: venv
	$(BIN)/ruff format bridge_worker tests scripts
	$(BIN)/ruff check --fix bridge_worker tests scripts

typecheck: venv
	$(BIN)/mypy

# Test files run in parallel (pytest-xdist): the suite mostly waits on real worker processes and
# servers, so 4 processes fit 2 cores; each file stays in one process (its fixtures and servers),
# the longest files first (LONGEST_FIRST in tests/conftest.py).
PYTEST_PARALLEL ?= -n 4 --dist loadfile --no-loadscope-reorder
pytest: venv bytecode
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The reference Elixir client against the real worker (installs Elixir with apt when root).
elixir-test: venv bytecode
	VENV=$(VENV) bash scripts/elixir_test.sh

# The suites start over a thousand workers, each importing bridge_worker from its sources (the
# editable install): compiled here once, or each worker compiles them again wherever Python may
# not write bytecode (PYTHONDONTWRITEBYTECODE set, a read-only tree): ~0.05 s of a start's ~0.35 s
# of CPU.
bytecode: venv
	$(BIN)/python -m compileall -q bridge_worker

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

# The suites while every core is busy (scripts/cpu_hog.py), $(STRESS_ROUNDS) rounds in a row:
# a test that only passes on an idle machine fails here. `make test-stress` runs everything;
# `make test-stress-ci` the timing-sensitive subset below, which .ci/run runs after `make test`.
STRESS_ROUNDS ?= 3
STRESS_PYTEST_CI := tests/io/test_server_liveness.py tests/io/test_parent_watch.py tests/io/test_faults.py \
	tests/io/test_process.py tests/io/test_log_sink.py tests/studies/test_leases.py \
	tests/client/test_client_deadlines.py tests/io/test_stop_long_frames.py
STRESS_MIX_CI := test/optuna_bridge/optimize_test.exs test/optuna_bridge/recovery_test.exs \
	test/optuna_bridge/shared_worker_test.exs test/optuna_bridge/supervision_test.exs \
	test/optuna_bridge/study_test.exs test/optuna_bridge/real_data_test.exs \
	test/optuna_bridge/stop_rules_test.exs test/optuna_bridge/worker_test.exs
test-stress: venv
	VENV=$(VENV) bash scripts/test_stress.sh $(STRESS_ROUNDS) "$(PYTEST_PARALLEL)" ""

test-stress-ci: venv
	VENV=$(VENV) bash scripts/test_stress.sh $(STRESS_ROUNDS) "$(STRESS_PYTEST_CI)" "$(STRESS_MIX_CI)"

# optuna-dashboard on the same storage the workers use: make dashboard STORAGE=sqlite:///x.db
# (any --storage URL the worker accepts: journal:///x.log, redis://, grpc://host:port, ...).
# optuna-dashboard comes from the lock (the `dashboard` extra) like every other package.
dashboard: venv
	@test -n "$(STORAGE)" || { echo "usage: make dashboard STORAGE=<url> [PORT=8080]"; exit 2; }
	$(BIN)/python scripts/dashboard.py --port $(or $(PORT),8080) "$(STORAGE)"

schema: venv
	$(BIN)/python scripts/gen_schema.py

# The worker as a package: wheel and sdist in dist/, built with the locked setuptools (no isolation,
# so no build dependency comes from the day of the build). The wheel and the runtime part of the
# lock (hashes included) are copied into the Elixir client's priv/python/, where
# `mix optuna_bridge.install` finds them (and the Hex package ships them).
PRIV_PYTHON := clients/elixir/priv/python
dist: venv
	rm -rf dist build/lib build/bdist.* $(PRIV_PYTHON)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	$(BIN)/python -m build --sdist --no-isolation --outdir dist . >/dev/null
	mkdir -p $(PRIV_PYTHON)
	cp dist/*.whl $(PRIV_PYTHON)/
	$(BIN)/python scripts/runtime_requirements.py $(LOCK) $(PRIV_PYTHON)/requirements.txt \
		$(PRIV_PYTHON)/$$(cd dist && ls *.whl)
	@ls -1 dist

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest .venv-dashboard $(TOOLS) build dist .pytest_cache \
		.mypy_cache .ruff_cache results .elixir-home clients/elixir/_build
