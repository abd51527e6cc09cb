"""The I/O loop: the one module that touches stdin and stdout.

It protects stdout, writes the ``ready`` frame, then reads whatever bytes arrive, lets the framing
decoder cut them into frames and the endpoint answer them, and writes all the replies for one read
in one write (pipelined input costs one system call per read, not per frame). After answering, it
polls for the next frame for ``--spin-us`` before sleeping in ``read``: a parent in an ask/tell
loop writes again within microseconds, and waking a sleeping process costs more than a frame.

Ends: EOF on stdin (exit 0 after answering what was read), a ``shutdown`` request (after its
reply), SIGTERM/SIGINT (after the frame being answered), or a vanished parent (broken pipe: quiet).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from types import FrameType

import structlog

from bridge_worker.framing import Framing, frame_encoder, make_decoder
from bridge_worker.rpc import Endpoint

READ_SIZE = 1 << 16

EXIT_OK = 0
"""EOF, ``shutdown``, SIGTERM, SIGINT or SIGHUP: everything read was answered or cleanly cut."""
EXIT_PARENT_GONE = 0
"""stdout closed under us (EPIPE): nobody is left to tell, so the worker leaves quietly."""


def protect_stdout() -> int:
    """Keep the protocol stream for frames only and return its file descriptor.

    File descriptor 1 is duplicated for the protocol writer, then pointed at stderr, so anything
    else that writes to "stdout" (a stray print, a C extension, a library's logger) lands in the
    logs instead of corrupting the stream.
    """
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_fd


class _Interrupted(Exception):
    """Raised by the signal handler to leave a blocking read."""


@dataclass
class _StopFlag:
    requested: bool = False
    reading: bool = False
    signal: str | None = None


def serve(
    endpoint: Endpoint,
    ready_payload: bytes,
    framing: Framing,
    max_frame_bytes: int,
    in_fd: int,
    out_fd: int,
    spin_s: float = 0.0,
) -> int:
    log = structlog.get_logger("bridge_worker.server")
    decoder = make_decoder(framing, max_frame_bytes)
    if not _several_cpus():
        spin_s = 0.0  # polling only pays when the parent can run meanwhile, on another CPU
    encode = frame_encoder(framing)
    stop = _install_signal_handlers()
    try:
        if ready_payload:  # empty with --jsonrpc strict: the parent speaks first
            _write_all(out_fd, encode(ready_payload))
        at_eof = False
        while not (at_eof or endpoint.closing or stop.requested):
            if spin_s:
                _await_input(in_fd, spin_s, stop)
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
            out: list[bytes] = []
            for frame in frames:
                out.extend(map(encode, endpoint.handle(frame)))
                if endpoint.closing or stop.requested:
                    break
            if out:
                _write_all(out_fd, b"".join(out))
    except BrokenPipeError:
        log.info("parent_gone")
        return EXIT_PARENT_GONE
    log.info("stopped", reason=stop.signal or ("shutdown" if endpoint.closing else "eof"))
    return EXIT_OK


def _await_input(fd: int, spin_s: float, stop: _StopFlag) -> None:
    """Poll for the next frame for up to ``spin_s`` before blocking in ``read``.

    A parent in a tight ask/tell loop answers within microseconds; catching its next frame while
    still running saves the wake-up of a blocked process, which on a VM costs more than the frame.
    """
    deadline = time.perf_counter() + spin_s
    while not stop.requested and time.perf_counter() < deadline:
        if select.select([fd], [], [], 0)[0]:
            return
        os.sched_yield()  # a parent that shares our CPU gets it at once


def _several_cpus() -> bool:
    affinity = getattr(os, "sched_getaffinity", None)
    return affinity is None or len(affinity(0)) > 1


def _write_all(fd: int, data: bytes) -> None:
    """A write to a pipe can be partial; a frame must never be."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _install_signal_handlers() -> _StopFlag:
    """SIGTERM, SIGINT and SIGHUP stop the loop after the frame being answered.

    While blocked in ``read`` the handler raises to leave it at once; while answering a frame it
    only sets the flag, so that frame still gets its whole reply.
    """
    stop = _StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.requested = True
        stop.signal = signal.Signals(signum).name
        if stop.reading:
            raise _Interrupted

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    return stop
