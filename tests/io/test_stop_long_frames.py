"""SIGTERM during a long frame is honoured between the frame's steps (issue 28 item 9): a long
SQLite ``import`` stops, leaving nothing behind, and a long ``add_trials`` stops, saying which
trials it stored; the worker exits within seconds, not when the frame would have ended.

The signal lands at an exact point of the frame: the worker pauses just before its
``PAUSE_AT``-th storage write (a race hook) while the test signals it. A fixed sleep before the
signal let a fast machine finish the frame first, and a loaded one not start it yet."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from msgspec import UnsetType

from bridge_worker.client import Worker
from tests.races import race_env, wait_until

PAUSE_AT = 100
"""A write well inside the frame's trials (an import first writes its staging study and a few
attributes; both frames write hundreds of trials after this one)."""

SPACE = {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(10)}


def _trials(n: int) -> list[dict[str, Any]]:
    return [
        {"params": {f"p{i}": (k + i) % 10 / 10 for i in range(10)}, "value": float(k)}
        for k in range(n)
    ]


def _spawn(url: str, race: Path, *args: str) -> Worker:
    """A worker that pauses before its ``PAUSE_AT``-th storage write until ``race / "go"``."""
    race.mkdir()
    return Worker.spawn(
        url, args=list(args), env=race_env(race, "pause_at_write", pause_at=PAUSE_AT)
    )


def _stop_midway(
    worker: Worker, race: Path, method: str, params: dict[str, Any]
) -> tuple[Any, float]:
    """Send ``method``, SIGTERM once it is paused midway, let it go on; the reply and seconds
    signal -> exit."""
    request_id = worker.send(method, params, timeout=60)
    wait_until((race / "write-paused").exists, f"{method} to reach its write {PAUSE_AT}")
    worker.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    (race / "go").touch()
    reply = worker.receive(timeout=120)
    worker.proc.wait(120)
    assert reply.id == request_id
    return reply, time.monotonic() - signalled


def test_sigterm_cuts_a_long_sqlite_import_and_leaves_nothing(tmp_path: Path) -> None:
    with Worker.spawn() as maker:
        maker.create("s", search_space=SPACE)
        for _ in range(4):  # 150 x 11 values per frame, within --max-add-values
            maker.add_trials("s", _trials(150))
        snapshot = maker.export("s")
    url = f"sqlite:///{tmp_path / 'import.db'}"
    worker = _spawn(url, tmp_path / "race")
    try:
        reply, stopped_in = _stop_midway(
            worker, tmp_path / "race", "import", {"snapshot": snapshot, "study": "t"}
        )
        assert not isinstance(reply.error, UnsetType), reply
        assert reply.error.data["kind"] == "worker_stopping", reply
        assert "nothing was imported" in reply.error.message
        assert stopped_in < 5, f"exit {stopped_in:.1f} s after SIGTERM"
    finally:
        worker.close()
    with Worker.spawn(url) as after:
        assert [s.study for s in after.list_studies()] == []  # no study, no staging copy


def test_sigterm_cuts_a_long_sqlite_add_trials_and_says_what_it_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'add.db'}"
    worker = _spawn(url, tmp_path / "race", "--max-add-values", "20000")
    try:
        worker.create("s", search_space=SPACE)
        reply, stopped_in = _stop_midway(
            worker, tmp_path / "race", "add_trials", {"study": "s", "trials": _trials(1000)}
        )
        error = reply.error
        assert not isinstance(error, UnsetType), reply
        assert error.data["kind"] == "worker_stopping", reply
        stored = error.data["stored"]
        assert 0 < len(stored) < 1000, stored  # stopped midway, after the paused write
        assert stopped_in < 5, f"exit {stopped_in:.1f} s after SIGTERM"
    finally:
        worker.close()
    with Worker.spawn(url) as after:
        assert [t.number for t in after.trials("s")] == stored
