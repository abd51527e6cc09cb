"""SIGTERM during a long frame is honoured between the frame's steps (issue 28 item 9): a long
SQLite ``import`` stops, leaving nothing behind, and a long ``add_trials`` stops, saying which
trials it stored; the worker exits within seconds, not when the frame would have ended."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from msgspec import UnsetType

from bridge_worker.client import Worker

SPACE = {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(10)}


def _trials(n: int) -> list[dict[str, Any]]:
    return [
        {"params": {f"p{i}": (k + i) % 10 / 10 for i in range(10)}, "value": float(k)}
        for k in range(n)
    ]


def _stop_midway(worker: Worker, method: str, params: dict[str, Any]) -> tuple[Any, float]:
    """Send ``method``, let it run a moment, SIGTERM; the reply and seconds signal -> exit."""
    request_id = worker.send(method, params, timeout=60)
    time.sleep(1.0)
    assert worker.proc.poll() is None
    worker.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
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
    worker = Worker.spawn(url)
    try:
        reply, stopped_in = _stop_midway(worker, "import", {"snapshot": snapshot, "study": "t"})
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
    worker = Worker.spawn(url, args=["--max-add-values", "20000"])
    try:
        worker.create("s", search_space=SPACE)
        reply, stopped_in = _stop_midway(
            worker, "add_trials", {"study": "s", "trials": _trials(1000)}
        )
        error = reply.error
        assert not isinstance(error, UnsetType), reply
        assert error.data["kind"] == "worker_stopping", reply
        stored = error.data["stored"]
        assert stopped_in < 5, f"exit {stopped_in:.1f} s after SIGTERM"
    finally:
        worker.close()
    with Worker.spawn(url) as after:
        assert [t.number for t in after.trials("s")] == stored
