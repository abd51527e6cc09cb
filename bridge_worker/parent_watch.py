"""Parent-death watchdog: the worker never outlives the process that started it.

A worker notices a dead parent by itself only when it reads EOF or a write fails, which never
happens while it is busy answering a long request: a ``kill -9`` of the parent (an Erlang VM, a
Python program) would leave it running, and holding storage locks, until that request ends.

Two mechanisms, both set up in the worker itself before the first frame is read:

* ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` (Linux, through ctypes): the kernel signals the worker the
  moment its parent exits. An idle worker, blocked in ``read``, leaves through its normal SIGTERM
  path. The setting fires when the parent *thread* exits, so ``os.getppid()`` is checked again
  right after it, in case the parent was already gone.
* a daemon thread that polls ``os.getppid()`` every ``POLL_S``: once the worker has been reparented
  (the parent died, on any platform) it logs ``parent_gone`` and ends the process with
  ``os._exit``, even if the main thread is in the middle of a request whose reply nobody can read.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import structlog

PR_SET_PDEATHSIG = 1
POLL_S = 0.2
"""Seconds between two ``getppid()`` checks: the worker is gone within this (plus exit time)."""
EXIT_PARENT_GONE = 0
"""Nobody is left to read an exit status; a parent that vanished is not the worker's failure."""


def set_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` when the parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def watch_parent(
    parent_pid: int | None = None,
    poll_s: float = POLL_S,
    on_gone: Callable[[], None] | None = None,
) -> threading.Thread:
    """Start the watchdog for the current process and return its (daemon) thread.

    ``parent_pid`` is the parent to outlive (default: the current parent, read before the death
    signal is armed); ``on_gone`` replaces the default exit (for tests).
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    set_death_signal()
    log = structlog.get_logger("bridge_worker.parent_watch")

    def gone() -> None:
        log.warning("parent_gone", parent_pid=parent)
        if on_gone is not None:
            on_gone()
        else:
            os._exit(EXIT_PARENT_GONE)

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        gone()

    thread = threading.Thread(target=run, name="parent-watch", daemon=True)
    thread.start()
    return thread
