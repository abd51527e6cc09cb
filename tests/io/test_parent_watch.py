"""A worker whose parent is killed with SIGKILL exits by itself, even in the middle of a request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PYTHON = sys.executable

# The parent: starts a worker, sends it a long piece of work (TPE asks of 1000 trials), says the
# worker's pid once the work is under way, then waits to be killed.
PARENT = textwrap.dedent("""
    import subprocess, sys, threading, time
    worker = subprocess.Popen([sys.executable, "-m", "bridge_worker", "--log-level", "info"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    worker.stdout.readline()  # ready
    space = '{"x":{"type":"float","low":0,"high":1},"y":{"type":"float","low":0,"high":1}}'
    create = ('{"id":1,"method":"create","params":{"study":"s","sampler":{"type":"tpe"},'
              '"search_space":%s}}\\n' % space)
    worker.stdin.write(create.encode())
    worker.stdin.flush()
    worker.stdout.readline()  # created
    # keep reading, so the worker is never stopped by a full pipe (only by its watchdog)
    threading.Thread(target=lambda: [None for _ in worker.stdout], daemon=True).start()
    asks = "".join('{"id":%d,"method":"ask","params":{"study":"s","n":1000}}\\n' % i
                   for i in range(2, 12))
    worker.stdin.write(asks.encode())  # many seconds of work, answered in one write at the end
    worker.stdin.flush()
    print(worker.pid, flush=True)
    time.sleep(600)
""")


def gone(pid: int) -> bool:
    """No such process, or a zombie (exited, waiting for a reaper that may never come)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_exits_within_two_seconds_of_a_killed_parent_mid_request() -> None:
    parent = subprocess.Popen([PYTHON, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        time.sleep(0.3)
        assert not gone(worker_pid), "the worker should be busy with the asks"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        killed_at = time.monotonic()
        while not gone(worker_pid) and time.monotonic() - killed_at < 5:
            time.sleep(0.02)
        elapsed = time.monotonic() - killed_at
        assert gone(worker_pid), "the worker outlived its parent by 5 s"
        assert elapsed < 2.0, f"the worker took {elapsed:.2f} s to notice its parent died"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout and parent.stdout.close()


def test_an_idle_worker_still_ends_at_eof() -> None:
    """The watchdog changes nothing for a parent that simply closes stdin."""
    proc = subprocess.run(
        [PYTHON, "-m", "bridge_worker"], input=b"", capture_output=True, timeout=30
    )
    assert proc.returncode == 0


def test_a_worker_started_from_a_thread_that_ends_lives_on() -> None:
    """Only the parent *process* counts: a thread pool or request thread may start the worker."""
    import threading

    started: list[subprocess.Popen[bytes]] = []

    def spawn() -> None:  # the thread ends once the worker is up (its watchdog armed)
        worker = subprocess.Popen(
            [PYTHON, "-m", "bridge_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        started.append(worker)
        assert worker.stdout is not None
        assert b'"ready"' in worker.stdout.readline()

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    worker = started[0]
    assert worker.stdin is not None and worker.stdout is not None
    try:
        time.sleep(1.0)
        worker.stdin.write(b'{"id":1,"method":"ping"}\n')
        worker.stdin.flush()
        assert b'"id":1' in worker.stdout.readline()
        assert worker.poll() is None
    finally:
        worker.stdin.close()
        worker.wait(30)
        worker.stdout.close()
