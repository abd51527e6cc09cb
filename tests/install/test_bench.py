"""``scripts/bench.py --quick`` (at smaller sizes) runs end to end and writes its table; no timing
is asserted."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PYTHON, ROOT

EXPECTED_ROWS = [
    "Random ask+tell per trial (60 trials): in-process Optuna",
    "Random ask+tell per trial (60 trials): worker lock-step",
    "Random ask+tell per trial (60 trials): worker pipelined",
    "Random ask+tell per trial (60 trials): worker batched",
    "Random ask+tell per trial (60 trials): raw pipe echo",
    "TPE ask+tell per trial (20 trials): in-process Optuna",
    "TPE ask+tell per trial (20 trials): worker lock-step",
    "TPE ask+tell per trial (20 trials): worker pipelined",
    "TPE ask+tell per trial (20 trials): worker batched",
    "TPE ask+tell per trial (20 trials): raw pipe echo",
    "Optuna CLI per step on SQLite",
    "`ping` pipelined through the worker",
    "start-up: spawn to `ready` frame",
    'start-up: `python -c "import optuna"`',
    "RSS per idle study, worker",
    "RSS per idle study, in-process Optuna",
]


SMALLER = [
    "--repeats",
    "1",
    "--random-trials",
    "60",
    "--tpe-trials",
    "20",
    "--cli-steps",
    "1",
    "--studies",
    "50",
]
"""Sizes below ``--quick``'s: every measurement and row still runs once; the figures mean
nothing here (no timing is asserted), and ``--quick``'s own sizes cost 30 s of CPU."""


@pytest.mark.timeout(960)
def test_quick_bench_writes_the_table(tmp_path: Path) -> None:
    # 900 s is a hang bound: the quick bench took over 280 s on a loaded machine.
    done = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "bench.py"), "--quick", *SMALLER, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "bench.md").read_text()
    assert table in done.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for expected in EXPECTED_ROWS:
        assert any(row.startswith(f"| {expected}") for row in rows), expected
    ratios = [row.split(" | ")[3] for row in rows if "worker lock-step (Python" in row]
    assert all("/in-process = " in r and r.endswith("\u00d7") for r in ratios), ratios
    assert "## Cost per trial as the study grows" in table
    assert (tmp_path / "bench.json").stat().st_size > 0
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
