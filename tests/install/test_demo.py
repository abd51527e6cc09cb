"""`make demo` runs scripts/demo.py: prove it drives a real worker to a sensible best trial."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import PYTHON, ROOT


def test_demo_finds_a_good_trial(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "demo.py"), "--trials", "40", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "storage memory" in result.stdout
    assert "trial  40/40" in result.stdout
    assert "parameter importances (" in result.stdout
    assert "evaluator: PED-ANOVA" in result.stdout  # what the numbers mean, in the output
    loss_line = next(x for x in result.stdout.splitlines() if x.startswith("best trial #"))
    loss = float(loss_line.split("validation loss ")[1].split()[0])
    assert 0.08 <= loss < 0.2  # random search alone rarely gets this close in 40 trials
    for name in ("demo_history.png", "demo_importances.png"):
        assert f"figure: {tmp_path / name}" in result.stdout
        image = (tmp_path / name).read_bytes()
        assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 5_000
