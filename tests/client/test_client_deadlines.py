"""The Python client never waits forever: every call has a deadline, ``spawn`` too (also for a
strict-mode worker, which sends no ``ready`` frame), and pipelining large frames with ``send``
cannot deadlock on full pipes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from msgspec import UnsetType

from bridge_worker.client import Worker, WorkerTimeout

PYTHON = sys.executable

# A stand-in worker: says ready, answers anything at once, in order, except "slow": that one once
# the file named by its first argument exists (it removes it: one file lets one "slow" through).
# A reply held until the test says so, not for a fixed 1.5 s that a busy machine could outlast
# before the client's 0.2 s timeout was even noticed.
FAKE = textwrap.dedent("""
    import json, os, sys, time
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "ready", "params": {
        "protocol": 1, "worker": "fake", "optuna": "0", "pid": 0, "storage": "memory",
        "framing": "line", "max_frame_bytes": 1048576}}) + "\\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request["method"] == "slow":
            deadline = time.monotonic() + 120
            while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
                time.sleep(0.01)
            if os.path.exists(sys.argv[1]):
                os.remove(sys.argv[1])
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                     "result": {"pong": True, "to": request["method"]}}) + "\\n")
        sys.stdout.flush()
""")


def _popen(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


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


def test_a_call_times_out_and_its_late_reply_is_dropped(tmp_path: Path) -> None:
    go = tmp_path / "go"
    worker = Worker(_popen(FAKE, str(go)), timeout=600)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            worker.call("slow", timeout=0.2)  # its reply waits for go: it cannot have come
        assert time.monotonic() - started < 60  # the call's timeout, not the worker's 600 s
        go.touch()
        assert worker.call("ping") == {"pong": True, "to": "ping"}  # not slow's late reply
        with worker.timeouts(0.2), pytest.raises(WorkerTimeout):
            worker.call("slow")
        assert worker.timeout == 600
        go.touch()
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
