"""Parent-death watchdog: the worker never outlives the process that started it.

A worker notices a dead parent by itself only when it reads EOF or a write fails, which never
happens while it is busy answering a long request: a ``kill -9`` of the parent (an Erlang VM, a
Python program) would leave it running, and holding storage locks, until that request ends.

A daemon thread waits for the parent *process* to end and then logs ``parent_gone`` and ends the
worker with ``os._exit``, even if the main thread is in the middle of a request whose reply nobody
can read:

* where ``os.pidfd_open`` works (Linux 5.3+), the thread blocks in ``poll`` on a pidfd of the
  parent, which becomes readable the moment that process exits: no polling cost, no delay;
* elsewhere it checks ``os.getppid()`` every ``POLL_S`` (the worker is reparented when its parent
  dies, on any POSIX platform).

``prctl(PR_SET_PDEATHSIG)`` is deliberately not used: the kernel fires it when the parent *thread*
that forked the worker exits, so a worker started from a ``threading.Thread``, a thread pool or a
web request thread would be killed while its parent process lives on (issue 28).
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable

import structlog

POLL_S = 0.2
"""Seconds between two ``getppid()`` checks where no pidfd is available."""
EXIT_PARENT_GONE = 0
"""Nobody is left to read an exit status; a parent that vanished is not the worker's failure."""


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None where the platform (or the kernel) has none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:
        return None


def wait_for_exit(parent: int, poll_s: float) -> None:
    """Return once the process ``parent`` (the worker's parent) has ended."""
    pidfd = open_pidfd(parent)
    if pidfd is not None:
        try:
            if os.getppid() != parent:  # it died before the pidfd was opened
                return
            waiter = select.poll()
            waiter.register(pidfd, select.POLLIN)
            while not waiter.poll():
                pass
            return
        finally:
            os.close(pidfd)
    while os.getppid() == parent:
        time.sleep(poll_s)


def watch_parent(
    parent_pid: int | None = None,
    poll_s: float = POLL_S,
    on_gone: Callable[[], None] | None = None,
) -> threading.Thread:
    """Start the watchdog for the current process and return its (daemon) thread.

    ``parent_pid`` is the parent to outlive (default: the current parent); ``on_gone`` replaces
    the default exit (for tests).
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    log = structlog.get_logger("bridge_worker.io.parent_watch")

    def run() -> None:
        wait_for_exit(parent, poll_s)
        log.warning("parent_gone", parent_pid=parent)
        if on_gone is not None:
            on_gone()
        else:
            os._exit(EXIT_PARENT_GONE)

    thread = threading.Thread(target=run, name="parent-watch", daemon=True)
    thread.start()
    return thread
