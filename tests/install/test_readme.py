"""README's examples run as written and print what README says they print."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.helpers import PYTHON, ROOT

README = (ROOT / "README.md").read_text()


def _shell_session() -> tuple[str, bytes]:
    """The command and the printed output of README's "By hand, in a shell" session."""
    section = README.split("## By hand, in a shell", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if "optuna-bridge" in line and "|" in line)
    command = "".join(lines[: end + 1]).removeprefix("$ ")
    return command, "".join(lines[end + 1 :]).encode()


def test_the_readme_shell_session_prints_what_readme_shows() -> None:
    command, shown = _shell_session()
    worker = Path(PYTHON).parent / "optuna-bridge"
    command = command.replace(".venv/bin/optuna-bridge", str(worker))
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # --log-level warning: nothing around the frames
    # The pid is the one thing that differs between runs.
    printed = re.sub(rb'"pid":\d+', b'"pid":5214', done.stdout)
    assert printed == shown


def test_the_readme_generic_client_example_runs_without_the_venv_on_path(tmp_path: Path) -> None:
    """Run by the venv's interpreter (as a user's script would be), with neither ``.venv/bin``
    on PATH nor a log line on stderr."""
    section = README.split("### A generic JSON-RPC client", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    venv_bin = str(Path(PYTHON).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    done = subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PATH": path},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"0\n"
    assert done.stderr == b""
