"""Who is writing a record in a shared storage, and whether that writer may still be at work.

Long writes that span transactions (an import's staging study, a chunked delete, a lease's
expiry mark) record their writer; a worker that finds such a record completes or rolls back the
work only once its writer is gone. A writer counts as dead when it ran on this host and its
process (pid and start time) is gone, or, on another host, when it has not renewed its record for
:data:`LEASE_S` seconds.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

STAGING_PREFIX = "optuna-bridge:staging:"
"""Names of studies being written (an import's staging study, a study being deleted): hidden from
readers; a parent cannot create or import a study under such a name."""
LEASE_S = 300.0
"""A writer on another host that has not renewed its record for this long is presumed dead."""


def writer_record() -> dict[str, Any]:
    """This process as the writer of a record (host, pid and start time, and when), so another
    worker can tell with :func:`writer_alive` whether it may still be at work."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start": _process_start(pid),
        "at": time.time(),
    }


def writer_alive(owner: Any) -> bool:
    """Whether the writer of a record may still be at work. This very process counts as not at
    work: whoever judges a record here takes turns with this process's own writers of it (a
    worker answers one frame at a time; imports and their recoveries hold
    :data:`~bridge_worker.studies.staged_import.IN_PROCESS`)."""
    if not isinstance(owner, dict):
        return False
    if owner.get("host") != socket.gethostname():
        at = owner.get("at")
        return isinstance(at, int | float) and time.time() - at < LEASE_S
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    start = _process_start(pid)
    return start is not None and start == owner.get("start")


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (with the pid, a process's identity:
    pids are reused, start times of one pid are not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])
