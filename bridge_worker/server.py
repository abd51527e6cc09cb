"""The I/O loop: the one module that touches stdin and stdout.

It protects stdout, writes the ``ready`` frame, then reads whatever bytes arrive, lets the framing
decoder cut them into frames and the endpoint answer them. Each reply is written as soon as it is
made: a reply that waited for the rest of its read would be lost with the worker (a ``tell`` that
committed but was never acknowledged, an ``ask`` whose trial the parent never learned), and the
replies of a whole read held together could exhaust memory. After answering, it polls for the next
frame for ``--spin-us`` before sleeping in ``read`` (:mod:`bridge_worker.polling`): a parent in
an ask/tell loop writes again within microseconds, and waking a sleeping process costs more than
a frame.

Nothing here may wait forever. stdout is written without blocking (a pipe is switched to
non-blocking mode and waited on with ``poll``), so a signal is seen even while the parent does not
read; before each frame a closed stdout is noticed (the parent is gone: its queued frames get no
work); between the items of a batch a signal stops the batch (the items not started are answered
``worker_stopping``).

Ends: EOF on stdin (exit 0 after answering what was read), a ``shutdown`` request (after its
reply), SIGTERM/SIGINT/SIGHUP (after the frame being answered; frames queued behind it get no
work), or a vanished parent (broken pipe: quiet).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
import sys
import time
from dataclasses import dataclass
from types import FrameType

import structlog

from bridge_worker.frame_budget import FrameWatch
from bridge_worker.framing import Framing, frame_encoder, make_decoder
from bridge_worker.polling import await_readable, several_cpus
from bridge_worker.rpc import Endpoint

READ_SIZE = 1 << 16

EXIT_OK = 0
"""EOF, ``shutdown``, SIGTERM, SIGINT or SIGHUP: everything read was answered or cleanly cut."""
EXIT_PARENT_GONE = 0
"""stdout closed under us (EPIPE): nobody is left to tell, so the worker leaves quietly."""
EXIT_FRAME_BUDGET = 75
"""One frame ran longer than ``--frame-budget``: the worker ended itself so its supervisor
restarts it (75 is ``EX_TEMPFAIL``, "try again")."""

STOP_WRITE_GRACE_S = 1.0
"""After a stop signal, how long a reply already being written may still wait for the parent to
read it; after that the worker leaves without it (the parent is not reading)."""

_POLL_TICK_MS = 100


def reserve_standard_fds() -> None:
    """Open ``/dev/null`` on any of fds 0-2 the parent left closed.

    Otherwise the first file the worker opens (a SQLite database, a journal) would get number 2
    and every log line would be written into it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def protect_stdout() -> int:
    """Keep the protocol stream for frames only and return its file descriptor.

    File descriptor 1 is duplicated for the protocol writer, then pointed at stderr, so anything
    else that writes to "stdout" (a stray print, a C extension, a library's logger) lands in the
    logs instead of corrupting the stream. A pipe or socket is made non-blocking (only this
    worker holds that end), so a parent that stops reading can never freeze the worker.
    """
    reserve_standard_fds()
    if sys.stdout is not None:
        sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    mode = os.fstat(proto_fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.set_blocking(proto_fd, False)
    return proto_fd


class _Interrupted(Exception):
    """Raised by the signal handler to leave a blocking read."""


@dataclass
class _StopFlag:
    requested: bool = False
    reading: bool = False
    signal: str | None = None
    at: float = 0.0


def serve(
    endpoint: Endpoint,
    ready_payload: bytes,
    framing: Framing,
    max_frame_bytes: int,
    in_fd: int,
    out_fd: int,
    spin_s: float = 0.0,
    watch: FrameWatch | None = None,
) -> int:
    log = structlog.get_logger("bridge_worker.server")
    decoder = make_decoder(framing, max_frame_bytes)
    if not several_cpus():
        spin_s = 0.0  # polling only pays when the parent can run meanwhile, on another CPU
    encode = frame_encoder(framing)
    stop = _install_signal_handlers()
    endpoint.should_stop = stopped = lambda: stop.requested
    write = _Writer(out_fd, stop)
    try:
        if ready_payload:  # empty with --jsonrpc strict: the parent speaks first
            write(encode(ready_payload))
        at_eof = False
        while not (at_eof or endpoint.closing or stop.requested):
            if spin_s:
                await_readable(in_fd, spin_s, stopped)
                if stop.requested:
                    break
            try:
                stop.reading = True
                data = os.read(in_fd, READ_SIZE)
            except _Interrupted:
                break
            finally:
                stop.reading = False
            if data:
                frames = decoder.feed(data)
            else:
                at_eof = True
                if decoder.pending and framing == "packet4":
                    log.warning("truncated_frame_at_eof", pending_bytes=decoder.pending)
                frames = decoder.eof()
            for frame in frames:
                if endpoint.closing or stop.requested:
                    break
                if write.reader_gone():
                    raise BrokenPipeError(errno.EPIPE, "stdout closed")
                if watch is not None:
                    watch.begin(frame)
                try:
                    payloads = endpoint.handle(frame)
                finally:
                    if watch is not None:
                        watch.end()
                for payload in payloads:
                    write(encode(payload))
            del frames
    except BrokenPipeError:
        log.info("parent_gone")
        return EXIT_PARENT_GONE
    except _WriteAbandoned as abandoned:
        log.warning("reply_abandoned", reason=stop.signal, unwritten_bytes=abandoned.unwritten)
    log.info("stopped", reason=stop.signal or ("shutdown" if endpoint.closing else "eof"))
    return EXIT_OK


class _WriteAbandoned(Exception):
    """A stop signal came and the parent did not read the reply within the grace period."""

    def __init__(self, unwritten: int) -> None:
        super().__init__(unwritten)
        self.unwritten = unwritten


class _Writer:
    """Writes whole frames to stdout; never blocks in the kernel, so signals are always seen.

    A pipe write can be partial and a frame must never be: the rest is written when ``poll``
    says the pipe has room. While waiting, a stop signal starts a short grace period (the reply
    of the frame just answered may still go out); past it the reply is abandoned.
    """

    def __init__(self, fd: int, stop: _StopFlag) -> None:
        self._fd = fd
        self._stop = stop
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)

    def reader_gone(self) -> bool:
        """Has the parent closed its end of stdout? (one ``poll`` system call, no waiting)"""
        return any(ev & select.POLLERR for _, ev in self._poll.poll(0))

    def __call__(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view):]
                continue
            except BlockingIOError:
                pass
            self._wait_for_room(len(view))

    def _wait_for_room(self, unwritten: int) -> None:
        while True:
            stop = self._stop
            if stop.requested and time.monotonic() - stop.at > STOP_WRITE_GRACE_S:
                raise _WriteAbandoned(unwritten)
            for _, events in self._poll.poll(_POLL_TICK_MS):
                if events & select.POLLERR:
                    raise BrokenPipeError(errno.EPIPE, "stdout closed")
                if events & select.POLLOUT:
                    return


def _install_signal_handlers() -> _StopFlag:
    """SIGTERM, SIGINT and SIGHUP stop the loop after the frame being answered.

    While blocked in ``read`` the handler raises to leave it at once; while answering a frame it
    only sets the flag, so that frame still gets its whole reply (the loop, the batch and the
    writer all look at the flag).
    """
    stop = _StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.requested:
            stop.at = time.monotonic()
        stop.requested = True
        stop.signal = signal.Signals(signum).name
        if stop.reading:
            raise _Interrupted

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    return stop
