# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   - create .venv, install, run an optimization through the real worker
#   make test   - create .venv, install, lint, type-check and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= test,postgres,redis,samplers,bench

.PHONY: venv demo test lint typecheck pytest schema clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

test: venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check bridge_worker tests scripts

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

schema: venv
	$(BIN)/python scripts/gen_schema.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache results
