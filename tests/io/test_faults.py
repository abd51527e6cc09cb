"""Faults around the real worker process: a parent that dies, stops reading or closes its end
mid-stream, EOF inside a frame, signals under load with durable storage.

(tests/io/test_process.py already covers: idle signals, EOF after complete lines, stdout closed
before a single ping, a signal during one long ask.)
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker
from tests.helpers import PYTHON

SPACE = {"x": {"type": "float", "low": 0, "high": 1}}


def start(*args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "info", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def lines(*frames: Any) -> bytes:
    return b"".join(orjson.dumps(f) + b"\n" for f in frames)


def pings(first: int, n: int) -> bytes:
    return b"".join(b'{"id":%d,"method":"ping"}\n' % i for i in range(first, first + n))


def writer(proc: subprocess.Popen[bytes], data: bytes, close: bool = True) -> threading.Thread:
    """Write in the background: a worker blocked on its stdout stops reading its stdin."""
    assert proc.stdin is not None
    stdin = proc.stdin

    def run() -> None:
        try:
            stdin.write(data)
            stdin.flush()
            if close:
                stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_slow_reader_loses_and_reorders_nothing() -> None:
    """20,000 pipelined pings while the parent reads nothing: the worker blocks on the full
    pipe; once the parent reads, every reply is there, whole and in order."""
    proc = start("--log-level", "warning")
    assert proc.stdout is not None and proc.stderr is not None
    n = 20_000
    thread = writer(proc, pings(1, n))
    time.sleep(1.0)  # the worker's stdout pipe fills up; nobody reads it
    assert proc.poll() is None
    out = proc.stdout.read()
    thread.join(10)
    frames = [orjson.loads(line) for line in out.splitlines()]
    assert frames[0]["method"] == "ready"
    assert [f["id"] for f in frames[1:]] == list(range(1, n + 1))
    assert all(f["result"] == {"pong": True} for f in frames[1:])
    assert proc.wait(10) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_packet4_eof_inside_a_frame_exits_0_without_a_reply_for_it() -> None:
    proc = start("--framing", "packet4")
    ping = b'{"id":1,"method":"ping"}'
    half = b'{"id":2,"method":"ping"}'
    stdin = len(ping).to_bytes(4, "big") + ping + len(half).to_bytes(4, "big") + half[:10]
    out, err = proc.communicate(stdin, timeout=30)
    assert proc.returncode == 0
    frames = []
    while out:
        size = int.from_bytes(out[:4], "big")
        assert len(out) >= 4 + size  # no half frame
        frames.append(orjson.loads(out[4 : 4 + size]))
        out = out[4 + size :]
    assert [f.get("id") for f in frames] == [None, 1]
    assert b"Traceback" not in err
    assert b"truncated_frame_at_eof" in err


def test_eof_inside_a_line_answers_the_complete_frames_and_the_rest_as_bad_input() -> None:
    proc = start()
    out, err = proc.communicate(pings(1, 3) + b'{"id":4,"method":"pi', timeout=30)
    assert proc.returncode == 0
    frames = [orjson.loads(line) for line in out.splitlines()]
    assert [f.get("id") for f in frames] == [None, 1, 2, 3, None]
    assert frames[-1]["error"]["data"]["kind"] == "parse_error"
    assert out.endswith(b"\n")
    assert b"Traceback" not in err


def test_stdout_closed_while_replies_are_streaming_ends_quietly() -> None:
    proc = start()
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # ready
    thread = writer(proc, pings(1, 50_000), close=False)
    proc.stdout.read(10_000)  # part of the replies, then the parent stops listening
    proc.stdout.close()
    assert proc.wait(20) == 0
    thread.join(10)
    err = proc.stderr.read()
    assert b"Traceback" not in err
    assert b"parent_gone" in err


def test_parent_killed_ends_the_worker(tmp_path: Path) -> None:
    """The parent is SIGKILLed while its worker is idle: the worker sees its pipes close and
    leaves, logging no traceback."""
    log = tmp_path / "worker.err"
    parent_code = (
        "import subprocess, sys\n"
        f"err = open({str(log)!r}, 'wb')\n"
        f"w = subprocess.Popen([{PYTHON!r}, '-m', 'bridge_worker', '--log-level', 'info'],"
        " stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)\n"
        "w.stdout.readline()\n"
        "print(w.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [PYTHON, "-c", parent_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{worker_pid}").exists() and time.monotonic() < deadline:
        status = (
            Path(f"/proc/{worker_pid}/status").read_text(errors="replace")
            if Path(f"/proc/{worker_pid}/status").exists()
            else ""
        )
        if "State:\tZ" in status:  # exited; its reaper (the dead parent's) is init
            break
        time.sleep(0.05)
    status_file = Path(f"/proc/{worker_pid}/status")
    alive = status_file.exists() and "State:\tZ" not in status_file.read_text(errors="replace")
    assert not alive, "the worker outlived its parent"
    parent.stdin.close()  # type: ignore[union-attr]
    parent.stdout.close()
    err = log.read_bytes()
    assert b"Traceback" not in err
    assert b'"stopped"' in err or b"parent_gone" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_under_pipelined_load_cuts_cleanly(signum: int) -> None:
    """A signal while thousands of frames are queued: the worker stops after the frame it is
    answering; stdout holds whole frames only, each in order; exit 0, no traceback."""
    proc = start()
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # ready
    n = 30_000
    thread = writer(proc, pings(1, n), close=False)
    first = proc.stdout.readline()
    assert orjson.loads(first)["id"] == 1
    proc.send_signal(signum)
    rest = proc.stdout.read()
    assert proc.wait(20) == 0
    thread.join(10)
    assert rest == b"" or rest.endswith(b"\n")
    ids = [1] + [orjson.loads(line)["id"] for line in rest.splitlines()]
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) < n  # it stopped early, not at EOF
    err = proc.stderr.read()
    assert b"Traceback" not in err
    assert signal.Signals(signum).name.encode() in err
    proc.stdin.close()  # type: ignore[union-attr]


def test_sigterm_during_a_pipeline_of_tells_loses_no_acknowledged_tell(tmp_path: Path) -> None:
    """SQLite storage: 200 asked trials, then 200 tells pipelined and SIGTERM after the first
    reply. After a restart, every tell that got a reply is a complete trial with its value.

    (Replies to the frames of one read are written together, so how many tells are answered
    before the cut depends on how the pipe delivered them; the invariant does not.)"""
    storage = f"sqlite:///{tmp_path / 'faults.db'}"
    n = 200
    with Worker.spawn(storage=storage) as w:
        w.create("t", sampler={"type": "random", "seed": 3}, search_space=SPACE)
        for start_number in range(0, n, 100):
            assert [t.number for t in w.ask("t", n=100)] == list(
                range(start_number, start_number + 100)
            )
    proc = start("--storage", storage, "--log-level", "warning")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # ready
    tells = lines(
        *[
            {"id": i, "method": "tell", "params": {"study": "t", "number": i, "value": i / 10}}
            for i in range(n)
        ]
    )
    thread = writer(proc, tells, close=False)
    reply = orjson.loads(proc.stdout.readline())
    acknowledged = {reply["id"]: reply["result"]["values"]}
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(30) == 0
    thread.join(10)
    assert rest == b"" or rest.endswith(b"\n")
    for line in rest.splitlines():
        reply = orjson.loads(line)
        acknowledged[reply["id"]] = reply["result"]["values"]
    assert b"Traceback" not in proc.stderr.read()
    with Worker.spawn(storage=storage) as w:
        complete = {t.number: t.values for t in w.trials("t", states=["complete"])}
    for number, values in acknowledged.items():
        assert complete.get(number) == values == [number / 10]
    proc.stdin.close()  # type: ignore[union-attr]
