"""The Python client never waits forever: every call has a deadline, ``spawn`` too (also for a
strict-mode worker, which sends no ``ready`` frame), and pipelining large frames with ``send``
cannot deadlock on full pipes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from msgspec import UnsetType

from bridge_worker.client import Worker, WorkerTimeout

PYTHON = sys.executable

# A stand-in worker: says ready, answers "slow" after 1.5 s and anything else at once, in order.
FAKE = textwrap.dedent("""
    import json, sys, time
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "ready", "params": {
        "protocol": 1, "worker": "fake", "optuna": "0", "pid": 0, "storage": "memory",
        "framing": "line", "max_frame_bytes": 1048576}}) + "\\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request["method"] == "slow":
            time.sleep(1.5)
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                     "result": {"pong": True, "to": request["method"]}}) + "\\n")
        sys.stdout.flush()
""")


def _popen(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_spawn_in_strict_mode_comes_up_without_a_ready_frame() -> None:
    started = time.monotonic()
    with Worker.spawn(args=["--jsonrpc", "strict"], ready_timeout=60) as worker:
        assert worker.ready is None
        assert worker.ping()
    assert time.monotonic() - started < 60


def test_spawn_gives_up_on_a_worker_that_never_comes_up() -> None:
    proc = _popen("import time; time.sleep(120)")
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"did not come up within 0\.5 s"):
        Worker(proc, ready_timeout=0.5)
    assert time.monotonic() - started < 30
    proc.kill()
    proc.wait()


def test_a_call_times_out_and_its_late_reply_is_dropped() -> None:
    worker = Worker(_popen(FAKE), timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            worker.call("slow", timeout=0.2)
        assert time.monotonic() - started < 1.4  # it did not wait for the reply
        assert worker.call("ping") == {"pong": True, "to": "ping"}  # not slow's late reply
        with worker.timeouts(0.2), pytest.raises(WorkerTimeout):
            worker.call("slow")
        assert worker.timeout == 30
        assert worker.call("ping") == {"pong": True, "to": "ping"}
    finally:
        worker.close()


def test_pipelining_large_frames_with_send_does_not_deadlock() -> None:
    """Big replies the client does not read yet fill the worker's stdout while big requests fill
    its stdin: a client that blocks in write would wait forever for a worker blocked in write."""
    worker = Worker.spawn()
    worker.create("s", search_space={"x": {"type": "float", "low": 0, "high": 1}})
    worker.add_trials(
        "s",
        [
            {"params": {"x": i / 1000}, "value": float(i), "user_attrs": {"note": "n" * 200}}
            for i in range(200)
        ],
    )
    padding = "p" * 30_000
    rounds = 40
    sent: list[object] = []

    def pipeline() -> None:
        for _ in range(rounds):
            sent.append(worker.send("trials", {"study": "s"}))  # ~60 KB reply
            sent.append(worker.send("set_attrs", {"study": "s", "user_attrs": {"p": padding}}))

    thread = threading.Thread(target=pipeline, daemon=True)
    thread.start()
    thread.join(120)
    try:
        assert not thread.is_alive(), "send blocked: client and worker both wait to write"
        replies = [worker.receive() for _ in sent]
        assert [r.id for r in replies] == sent
        assert all(isinstance(r.error, UnsetType) for r in replies)
    finally:
        if thread.is_alive():
            worker.proc.kill()
        worker.close()
