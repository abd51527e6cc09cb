"""Draw a figure in a child process with its own memory and time limits.

A figure's cost is hard to know before it is drawn (matplotlib and plotly allocate as they go,
contour interpolation grows with the square of the points), and a worker that runs out of memory
may not even get to raise ``MemoryError``: the kernel or a C extension ends it with no reply and
no log. So the drawing happens in a forked copy of the worker: it sees the worker's memory as it
was (the trials, the imported plotting libraries) without sharing anything that can be changed,
runs under ``RLIMIT_AS`` (its address space at the fork plus ``memory_bytes``) and is killed at
``timeout_s``. Whatever happens to it (``MemoryError``, a crash, a stall) the worker answers a
reply and carries on.

The child never touches the protocol stream, the storage or the log sink: it draws, writes one
result record to a pipe and leaves with ``os._exit`` (no atexit handlers, no buffered output).
Cost: a fork of the worker (~5-15 ms for a few hundred MB of address space).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import resource
import select
import signal
import time
from collections.abc import Callable

import msgspec

from bridge_worker.wire.errors import BridgeError, ErrorKind

_OK, _ERROR, _OUT_OF_MEMORY, _FAILED = b"O", b"E", b"M", b"F"
_READ_SIZE = 1 << 20


class _ChildError(msgspec.Struct):
    kind: str
    message: str
    data: dict[str, object]


class SandboxMemoryError(Exception):
    """The child ran out of its memory (``MemoryError``, or killed by a signal while drawing)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SandboxTimeout(Exception):
    """The child was still drawing at the deadline (it has been killed)."""


class SandboxFailure(Exception):
    """The drawing raised something unexpected (its repr is the message)."""


def run_isolated(draw: Callable[[], bytes], *, memory_bytes: int, timeout_s: float) -> bytes:
    """``draw()`` run in a forked child; its bytes, or its ``BridgeError`` raised here.

    Raises :class:`SandboxMemoryError`, :class:`SandboxTimeout` or :class:`SandboxFailure` for
    the ways a child can end without a figure.
    """
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:  # no memory (or no process slot) for a copy of the worker
        os.close(read_fd)
        os.close(write_fd)
        raise SandboxMemoryError(f"cannot start the drawing process: {exc}") from None
    if pid == 0:  # pragma: no cover - the child; its outcome is checked through the parent
        os.close(read_fd)
        _child(draw, write_fd, memory_bytes, timeout_s)
    os.close(write_fd)
    try:
        record, timed_out = _read_until(read_fd, time.monotonic() + timeout_s)
    except BaseException:  # never leave a drawing process behind
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    if timed_out:
        _kill(pid)
        raise SandboxTimeout()
    _, status = os.waitpid(pid, 0)
    return _outcome(record, status)


def _outcome(record: bytes, status: int) -> bytes:
    head, body = record[:1], record[1:]
    if head == _OK:
        return body
    if head == _ERROR:
        error = msgspec.json.decode(body, type=_ChildError)
        kind = next(k for k in ErrorKind if k.kind == error.kind)
        raise BridgeError(kind, error.message, **error.data)
    if head == _OUT_OF_MEMORY:
        raise SandboxMemoryError("MemoryError")
    if head == _FAILED:
        raise SandboxFailure(body.decode(errors="replace"))
    if os.WIFSIGNALED(status):  # the kernel or a C extension ended it: memory, almost always
        raise SandboxMemoryError(f"ended by {signal.Signals(os.WTERMSIG(status)).name}")
    code = os.waitstatus_to_exitcode(status)
    raise SandboxFailure(f"the drawing process ended with status {code} without a figure")


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything the child writes until it closes the pipe; ``(data, True)`` at the deadline."""
    chunks: list[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", True
        try:
            ready = poller.poll(min(left, 0.1) * 1000)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        if not ready:
            continue
        chunk = os.read(fd, _READ_SIZE)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended just now
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _child(
    draw: Callable[[], bytes], fd: int, memory_bytes: int, timeout_s: float
) -> None:  # pragma: no cover - runs in the child
    """Draw and report; never returns (``os._exit``)."""
    code = 0
    try:
        # A crash here is reported by the parent (the signal); an inherited faulthandler would
        # also dump a traceback on the worker's stderr, which carries only JSON log lines.
        faulthandler.disable()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)  # the worker's handlers are not ours
        # Ends the child on its own should the worker die before it could kill it.
        signal.alarm(int(timeout_s) + 2)
        limit = _address_space() + memory_bytes
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            record = _OK + draw()
        except MemoryError:
            record = _OUT_OF_MEMORY
        except BridgeError as error:
            record = _ERROR + msgspec.json.encode(
                _ChildError(error.kind.kind, error.message, dict(error.data))
            )
        except BaseException as exc:  # reported to the worker, which answers it
            record = _FAILED + repr(exc)[:2000].encode(errors="replace")
        view = memoryview(record)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _address_space() -> int:
    """This process's virtual memory size in bytes (``VmSize``)."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - every Linux has it
