"""Where log lines go: stderr, written by a thread, so logging never blocks or kills the worker.

stderr belongs to the parent, and a parent may close it, capture it and never read it, or read it
slowly. A direct write would then raise (a closed pipe) or block for good (a full pipe), and the
frame being answered would never get its reply. So the worker only queues a line, in memory and
bounded; one thread writes the queue to the file descriptor. A line that does not fit in the queue,
or whose write fails, is dropped and counted; once a write succeeds again the next record says how
many were lost (``log_lines_dropped``). Only stdout's broken pipe means "the parent is gone";
stderr's never does.

Python's own ``sys.stderr`` (tracebacks, and stray prints that
:func:`~bridge_worker.io.server.protect_stdout` routed there) goes through the same sink, so nothing
in the worker writes to stderr directly.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections import deque

import orjson

MAX_PENDING_BYTES = 1 << 18
"""Log bytes held while stderr is not being drained; beyond this, lines are dropped (counted)."""

_CHUNK_BYTES = 1 << 16


class LogSink:
    """A bounded, never-blocking line queue in front of a file descriptor."""

    def __init__(self, fd: int = 2, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self.fd = fd
        self.max_pending_bytes = max_pending_bytes
        self.dropped_total = 0
        """Lines lost since start (queue full or write failed)."""
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._unreported = 0
        self._busy = False
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._run, name="log-sink", daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> int:
        """Queue one line (or any piece of one); never blocks on the reader, never raises."""
        with self._lock:
            if self._pending_bytes + len(line) > self.max_pending_bytes:
                self._drop(1)
            else:
                self._pending.append(line)
                self._pending_bytes += len(line)
                self._wake.notify()
        return len(line)

    def flush(self) -> None:
        """Nothing to do: lines leave as soon as stderr takes them (see :meth:`drain`)."""

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to be written (at exit); True if it was."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def _drop(self, lines: int) -> None:
        self._unreported += lines
        self.dropped_total += lines

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending:
                    self._busy = False
                    self._wake.notify_all()
                    self._wake.wait()
                self._busy = True
                chunk: list[bytes] = []
                size = 0
                while self._pending and size < _CHUNK_BYTES:
                    line = self._pending.popleft()
                    chunk.append(line)
                    size += len(line)
                self._pending_bytes -= size
                lost = self._unreported
                self._unreported = 0
            if lost:
                chunk.insert(0, _dropped_record(lost))
            try:
                _write_all(self.fd, b"".join(chunk))
            except OSError:  # closed, broken, or anything else: count, never raise
                with self._lock:
                    # the report line was not a log line of its own; the lines it counted were
                    self._drop(len(chunk) - (1 if lost else 0) + lost)
                time.sleep(0.01)  # a stderr that fails at once must not spin a core


def _dropped_record(count: int) -> bytes:
    return (
        orjson.dumps(
            {
                "event": "log_lines_dropped",
                "count": count,
                "level": "warning",
                "logger": "bridge_worker.io.logs",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        + b"\n"
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SinkBinary(io.RawIOBase):
    """The sink as a binary stream (structlog's ``BytesLogger`` and ``sys.stderr.buffer``)."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._sink.write(bytes(data))

    def fileno(self) -> int:
        return self._sink.fd


class SinkText(io.TextIOBase):
    """The sink as a text stream: ``sys.stderr``, ``sys.stdout`` and stdlib logging handlers.

    Writing to it never raises, so neither a traceback printed by Python nor the interpreter's
    final flush at exit can fail on a closed stderr.
    """

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink
        self.buffer = SinkBinary(sink)

    encoding = "utf-8"
    errors = "backslashreplace"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._sink.write(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def fileno(self) -> int:
        return self._sink.fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self._sink.fd)
        except OSError:
            return False
