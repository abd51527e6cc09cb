"""The command line: a frozen config, read without importing Optuna or numpy."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from bridge_worker.config import WorkerConfig, parse_args

HEAVY = ("optuna", "numpy", "sqlalchemy")

_PROBE = """
import sys
from bridge_worker.__main__ import main
try:
    main({argv!r})
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print("HEAVY", heavy, file=sys.stderr)
"""


def _heavy_after(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY"))
    return done, line


def test_help_imports_no_optuna() -> None:
    done, heavy = _heavy_after(["--help"])
    assert "optuna-bridge" in done.stdout
    assert heavy == "HEAVY []"


def test_a_bad_flag_is_refused_without_importing_optuna() -> None:
    done, heavy = _heavy_after(["--max-batch", "0"])
    assert "--max-batch must be at least 1" in done.stderr
    assert heavy == "HEAVY []"


def test_config_module_imports_neither_optuna_nor_numpy() -> None:
    probe = (
        "import sys; from bridge_worker.config import parse_args; parse_args([]); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"


def test_parse_args_returns_a_frozen_config() -> None:
    config = parse_args(["--storage", "sqlite:///x.db", "--max-ask", "10", "--jsonrpc", "strict"])
    assert isinstance(config, WorkerConfig)
    assert config.storage.url == "sqlite:///x.db"
    assert config.limits.max_ask == 10
    assert config.strict
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.spin_us = 5  # type: ignore[misc]
