"""The worker's write path (issue 24, issue 28 item 8, issue 30 item 1): few system calls per
frame in a burst, the parent's stdout description left as it was, whole replies for a parent that
reads slowly while the worker stops, and a last line without newline that is no frame."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, WorkerExited
from tests.helpers import PYTHON

COUNTING_WORKER = textwrap.dedent(
    """
    import atexit, json, os, select, stat, sys

    counts = {"writes": 0, "polls": 0, "reads": 0}
    real_write, real_read, real_poll = os.write, os.read, select.poll

    def write(fd, data):
        # neither the log sink's stderr nor a storage file is the protocol stream
        if fd != 2 and not stat.S_ISREG(os.fstat(fd).st_mode):
            counts["writes"] += 1
        return real_write(fd, data)

    def read(fd, size):
        counts["reads"] += 1
        return real_read(fd, size)

    class Poll:
        def __init__(self):
            self._poll = real_poll()
        def register(self, *args):
            self._poll.register(*args)
        def poll(self, *args):
            counts["polls"] += 1
            return self._poll.poll(*args)

    os.write, os.read, select.poll = write, read, Poll
    atexit.register(lambda: real_write(2, b"COUNTS " + json.dumps(counts).encode() + b"\\n"))
    from bridge_worker.__main__ import main
    sys.exit(main())
    """
)


def _counted_burst(frames: bytes, *args: str) -> tuple[list[bytes], dict[str, int]]:
    proc = subprocess.run(
        [PYTHON, "-c", COUNTING_WORKER, "--spin-us", "0", *args],
        input=frames,
        capture_output=True,
        timeout=120,
        check=True,
    )
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith(b"COUNTS ")]
    return proc.stdout.splitlines(), json.loads(line[len(b"COUNTS ") :])


def test_a_burst_of_pings_costs_far_less_than_one_write_per_reply() -> None:
    """Not a timed test: it counts system calls. One write (and one poll) per reply cost a ping
    burst a factor of 4 (issue 24); replies of frames read together share writes."""
    count = 2000
    burst = b"".join(b'{"id":%d,"method":"ping"}\n' % i for i in range(count))
    replies, counts = _counted_burst(burst)
    assert len(replies) == count + 1  # ready + one reply each
    assert counts["writes"] <= count / 10, counts
    assert counts["polls"] <= count / 10, counts


def test_a_burst_of_tells_on_a_journal_shares_writes_too(tmp_path: Path) -> None:
    """Group commit: frames read together are synced and answered together on a journal."""
    url = f"journal:///{tmp_path}/j.log"
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    frames: list[dict[str, Any]] = [
        {"id": "c", "method": "create", "params": {"study": "s", "search_space": space}},
        {"id": "a", "method": "ask", "params": {"study": "s", "n": 200}},
    ]
    frames += [
        {"id": n, "method": "tell", "params": {"study": "s", "number": n, "value": 1.0}}
        for n in range(200)
    ]
    burst = b"".join(orjson.dumps(f) + b"\n" for f in frames)
    replies, counts = _counted_burst(burst, "--storage", url)
    assert all(b'"result"' in r for r in replies[1:]), replies[-1]
    assert counts["writes"] <= 200 / 4, counts


# ---- issue 28 item 8: the parent's stdout stays as the parent made it ------------------------


def test_the_worker_leaves_a_shared_stdout_blocking_for_its_parent() -> None:
    """A shell-like parent shares the pipe the worker writes to and writes to it itself after
    the worker started: its own write must not fail with ``BlockingIOError``."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "warning"],
        stdin=subprocess.PIPE,
        stdout=write_end,
        stderr=subprocess.DEVNULL,
    )
    reader = os.fdopen(read_end, "rb")
    try:
        assert b'"ready"' in reader.readline()
        assert os.get_blocking(write_end)  # O_NONBLOCK lives on the shared description
        big = b"x" * (1 << 20) + b"\n"
        got: list[bytes] = []
        drain = threading.Thread(target=lambda: got.append(reader.readline()))
        drain.start()
        os.write(write_end, big)  # blocking: waits for the reader, never EAGAIN
        drain.join(60)
        assert got == [big]
        assert proc.stdin is not None
        proc.stdin.write(b'{"id":1,"method":"ping"}\n')
        proc.stdin.flush()
        assert orjson.loads(reader.readline())["id"] == 1
    finally:
        os.close(write_end)
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(30)
        reader.close()


def test_a_socket_stdout_is_written_without_changing_its_blocking_mode() -> None:
    """A parent that talks over a socket pair: the worker sends with ``MSG_DONTWAIT`` and leaves
    the shared socket blocking."""
    import socket

    parent, child = socket.socketpair()
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "warning"],
        stdin=child.fileno(),
        stdout=child.fileno(),
        stderr=subprocess.DEVNULL,
    )
    reader = parent.makefile("rb")
    try:
        assert b'"ready"' in reader.readline()
        assert os.get_blocking(child.fileno())  # the worker's end, shared with this process
        child.close()
        parent.sendall(b'{"id":1,"method":"ping"}\n')
        assert orjson.loads(reader.readline())["id"] == 1
    finally:
        parent.shutdown(socket.SHUT_WR)
        proc.wait(30)
        reader.close()
        parent.close()


# ---- issue 30 item 1: SIGTERM while a slow parent reads the last reply -----------------------

WIDE = {f"p{i}": {"type": "float", "low": 0, "high": 1} for i in range(100)}
CHUNK = 1 << 16
SLOW_READER_PAUSE_S = 0.4
"""A pause between two reads of the parent (a fifth of the worker's stop grace); the whole reply
takes several times the grace to read, so only a grace that restarts while the parent reads lets
it out whole."""


def test_sigterm_while_a_slow_parent_reads_the_reply_sends_it_whole() -> None:
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "warning", "--max-ask-values", "100000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = proc.stdout.fileno()
    try:
        assert b'"ready"' in proc.stdout.readline()
        proc.stdin.write(
            orjson.dumps(
                {
                    "id": "c",
                    "method": "create",
                    "params": {
                        "study": "w",
                        "search_space": WIDE,
                        "sampler": {"type": "random", "seed": 0},
                    },
                }
            )
            + b"\n"
        )
        proc.stdin.write(b'{"id":"a","method":"ask","params":{"study":"w","n":200}}\n')
        proc.stdin.flush()
        received = bytearray()
        while received.count(b"\n") < 1:  # the create reply
            received += os.read(out, CHUNK)
        received = received[received.index(b"\n") + 1 :]
        while not received:
            received += os.read(out, CHUNK)  # the ask reply is being written now
        proc.send_signal(signal.SIGTERM)
        while True:
            time.sleep(SLOW_READER_PAUSE_S)
            chunk = os.read(out, CHUNK)
            if not chunk:
                break
            received += chunk
        assert received.endswith(b"\n") and received.count(b"\n") == 1, len(received)
        assert len(received) > 6 * CHUNK  # read in pieces, for longer than the grace
        assert len(orjson.loads(received)["result"]["trials"]) == 200
        assert proc.wait(30) == 0
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


FAKE_WORKER = textwrap.dedent(
    """
    import sys
    out = sys.stdout.buffer
    out.write(b'{"jsonrpc":"2.0","method":"ready","params":{"protocol":1,"worker":"0",'
              b'"optuna":"0","pid":1,"storage":"memory","framing":"line",'
              b'"max_frame_bytes":1000}}\\n')
    out.flush()
    sys.stdin.buffer.readline()
    out.write(b'{"jsonrpc":"2.0","id":1,"result":{"pong":tr')  # cut: no newline
    out.flush()
    """
)


def test_the_python_client_treats_a_last_line_without_newline_as_no_frame() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with pytest.raises(WorkerExited):
        Worker(proc).ping()
    proc.wait(10)


# ---- group commit keeps every acknowledged tell through kill -9 ------------------------------

KILLS = 5
TRIALS = 300


def _load(url: str) -> Any:
    import optuna

    if url.startswith("journal:///"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage: Any = JournalStorage(JournalFileBackend(url[len("journal://") :]))
    else:
        storage = url
    return optuna.load_study(study_name="k", storage=storage)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_kill_9_during_pipelined_tells_loses_no_acknowledged_one(kind: str, tmp_path: Path) -> None:
    """300 trials told in pipelined groups; the worker is killed 5 times while answering: every
    tell the parent saw acknowledged is stored with its value (group commit syncs before the
    replies of a group leave)."""
    url = f"sqlite:///{tmp_path}/k.db" if kind == "sqlite" else f"journal:///{tmp_path}/k.log"
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    with Worker.spawn(url) as w:
        w.create("k", search_space=space, sampler={"type": "random", "seed": 1})
        numbers = [t.number for t in w.ask("k", n=TRIALS)]
    acknowledged: set[int] = set()
    per_round = TRIALS // KILLS
    for round_ in range(KILLS):
        todo = numbers[round_ * per_round : (round_ + 1) * per_round]
        proc = subprocess.Popen(
            [PYTHON, "-m", "bridge_worker", "--storage", url, "--log-level", "warning"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None and proc.stdout is not None
        assert b'"ready"' in proc.stdout.readline()
        proc.stdin.write(
            b"".join(
                orjson.dumps(
                    {
                        "id": n,
                        "method": "tell",
                        "params": {"study": "k", "number": n, "value": n / 1000},
                    }
                )
                + b"\n"
                for n in todo
            )
        )
        proc.stdin.flush()
        kill_after = 1 + round_ * (per_round // KILLS)  # early, middle and late in the group
        for _ in range(kill_after):
            reply = orjson.loads(proc.stdout.readline())
            assert "result" in reply, reply
            acknowledged.add(reply["id"])
        proc.kill()
        proc.wait()
        for line in proc.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):  # a last line without newline is no frame
                acknowledged.add(orjson.loads(line)["id"])
        proc.stdin.close()
        proc.stdout.close()
    complete = {t.number: t.value for t in _load(url).trials if t.state.name == "COMPLETE"}
    assert acknowledged, "the test must see acknowledgements"
    missing = acknowledged - set(complete)
    assert not missing, sorted(missing)
    assert all(complete[n] == n / 1000 for n in acknowledged)
