"""Waiting for the other end's next frame: spin briefly, then let the caller block in ``read``.

Both ends of the pipe use it (the worker's I/O loop in :mod:`bridge_worker.io.server` for the
parent's next request, the Python client for the worker's reply). In a tight ask/tell loop the
other process answers within microseconds; catching its bytes while still running saves the
wake-up of a blocked process, which on a VM costs more than the frame. Polling only pays when the
other process can run meanwhile, on another CPU, so with one CPU it is switched off.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable


def several_cpus() -> bool:
    """Whether this process may run on more than one CPU (polling is pointless otherwise)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return affinity is None or len(affinity(0)) > 1


def spin_seconds(spin_us: float) -> float:
    """``spin_us`` microseconds as seconds, or 0 (never poll) when there is one CPU."""
    return spin_us / 1e6 if spin_us > 0 and several_cpus() else 0.0


def await_readable(fd: int, spin_s: float, stopped: Callable[[], bool] | None = None) -> bool:
    """Poll ``fd`` for up to ``spin_s`` seconds (or until ``stopped()``); True once it has bytes
    to read. False means: block in ``read`` now."""
    deadline = time.perf_counter() + spin_s
    while not (stopped is not None and stopped()) and time.perf_counter() < deadline:
        if select.select([fd], [], [], 0)[0]:
            return True
        os.sched_yield()  # the other end, if it shares our CPU, gets it at once
    return False
