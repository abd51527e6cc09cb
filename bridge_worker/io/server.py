"""The I/O loop: the one module that touches stdin and stdout.

It protects stdout, writes the ``ready`` frame, then reads whatever bytes arrive, lets the framing
decoder cut them into frames and the endpoint answer them.

Each reply is written as soon as it is made: a reply that waited for the rest of its read would be
lost with the worker (a ``tell`` that committed but was never acknowledged, an ``ask`` whose trial
the parent never learned). Two cases may gather the replies of frames that arrived in one read
into one write (at most :data:`GATHER_MAX_BYTES`, none held longer than :data:`GATHER_MAX_S`,
or :data:`GROUP_COMMIT_MAX_S` where the storage group-commits):

* ``memory`` storage: a dead worker loses those studies anyway, so a held reply loses nothing the
  parent could still use;
* a storage that *group-commits* (:mod:`bridge_worker.storage.group_commit`): the writes of the
  gathered frames are made durable together (one ``fsync``), and only then are their replies
  written, so no reply ever leaves before its data is durable.

Held replies are written before the worker waits for input, before a frame that may run long
(:func:`quick_call`), after any frame that did run long, and on every exit path (EOF,
``shutdown``, a signal, ``--frame-budget``).

After answering, it polls for the next frame for ``--spin-us`` before sleeping
(:mod:`bridge_worker.io.polling`): a parent in an ask/tell loop writes again within microseconds,
and waking a sleeping process costs more than a frame.

Nothing here may wait forever. stdout is written without blocking (a pipe is reopened through
``/proc/self/fd`` as a non-blocking description of the worker's own, a socket is sent to with
``MSG_DONTWAIT``; the parent's own description is never changed) and waited on with ``poll``, so a
signal is seen even while the parent does not read. A parent that is gone is noticed in the
``poll`` the worker makes while waiting for input (stdout is watched there too) and by the first
write that fails: its queued frames get no work. Between the items of a batch a signal stops the
batch (the items not started are answered ``worker_stopping``).

Ends: EOF on stdin (exit 0 after answering what was read), a ``shutdown`` request (after its
reply), SIGTERM/SIGINT/SIGHUP (after the frame being answered; frames queued behind it get no
work), or a vanished parent (broken pipe: quiet).
"""

from __future__ import annotations

import errno
import functools
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from bridge_worker.io.frame_budget import FrameWatch
from bridge_worker.io.polling import await_readable, several_cpus
from bridge_worker.wire.framing import Framing, frames_encoder, make_decoder
from bridge_worker.wire.rpc import Endpoint

if TYPE_CHECKING:  # the dispatcher imports Optuna, which must not run before stdout is protected
    from bridge_worker.wire.dispatch import Method

READ_SIZE = 1 << 16

EXIT_OK = 0
"""EOF, ``shutdown``, SIGTERM, SIGINT or SIGHUP: everything read was answered or cleanly cut."""
EXIT_PARENT_GONE = 0
"""stdout closed under us (EPIPE): nobody is left to tell, so the worker leaves quietly."""
EXIT_FRAME_BUDGET = 75
"""One frame ran longer than ``--frame-budget``: the worker ended itself so its supervisor
restarts it (75 is ``EX_TEMPFAIL``, "try again")."""

STOP_WRITE_GRACE_S = 2.0
"""After a stop signal, how long a reply already being written may wait for the parent to read
more of it. The grace restarts each time the parent reads (it is reading, just slowly), so a
reader that keeps reading always gets whole frames; a parent that stops reading for this long
loses the reply (the worker leaves with the frame unfinished, which the parent sees as a last
line without its newline: no frame, PROTOCOL.md "Framing")."""
STOP_WRITE_LIMIT_S = 30.0
"""After a stop signal, the most a slowly reading parent can keep the worker writing."""

GATHER_MAX_BYTES = 1 << 16
"""Replies held for one write: at most this many bytes (one pipe's worth)."""
GATHER_MAX_S = 0.002
"""Replies held for one write on memory storage: none longer than this (plus the quick frame
being answered)."""
GROUP_COMMIT_MAX_S = 0.05
"""The same bound for a storage that group-commits: its frames take milliseconds each (a
transaction), and the point is to share one ``fsync`` among many of them."""

QUICK_METHODS = frozenset(
    {"ping", "ask", "tell", "report", "renew", "set_attrs", "enqueue", "best"}
)
"""Methods that take about as long as a frame's I/O; held replies may wait for them when they
are asked for one trial (``n`` 1)."""

_POLL_TICK_MS = 100
_GONE = select.POLLERR | select.POLLHUP


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
    logs instead of corrupting the stream. A pipe is reopened (:func:`own_pipe_end`) so that the
    worker can write it without blocking while the parent's description stays as it was.
    """
    reserve_standard_fds()
    if sys.stdout is not None:
        sys.stdout.flush()
    proto_fd = own_pipe_end(os.dup(1))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_fd


def own_pipe_end(fd: int) -> int:
    """For a pipe, a new non-blocking open file description of the same pipe, replacing ``fd``.

    ``O_NONBLOCK`` belongs to the open file description, which a ``dup`` (and a ``fork``) shares:
    set on the inherited stdout, it would make the *parent's* next write to that pipe (a shell,
    a harness sharing it) fail with ``EAGAIN``. Opening ``/proc/self/fd/N`` gives a description
    of the worker's own. Where that is impossible (no ``/proc``) the pipe stays blocking and is
    written only as far as ``poll`` says it has room, in ``PIPE_BUF`` pieces once it is full.
    """
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return fd
    try:
        own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return fd
    os.close(fd)
    return own


class _Interrupted(Exception):
    """Raised by the signal handler to leave a blocking wait for input."""


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
    gather_s: float = 0.0,
    commit: Callable[[], None] | None = None,
) -> int:
    """Answer frames from ``in_fd`` on ``out_fd`` until the session ends; the exit status.

    ``gather_s``: replies of frames read together may share one write, none held longer than
    this (0: each reply written as made); for memory storage, or a storage whose ``commit``
    makes the writes of those frames durable before their replies.
    """
    log = structlog.get_logger("bridge_worker.io.server")
    decoder = make_decoder(framing, max_frame_bytes)
    if not several_cpus():
        spin_s = 0.0  # polling only pays when the parent can run meanwhile, on another CPU
    stop = _install_signal_handlers()
    endpoint.should_stop = stopped = lambda: stop.requested
    write = _Writer(out_fd, frames_encoder(framing), stop, commit, gather_s)
    gather = gather_s > 0
    wait_for_input = _input_waiter(in_fd, out_fd)
    clock = time.perf_counter
    if gather:

        def flush_before_long_call(method: Method, params: Any) -> None:
            """Held replies are written before a call that may run long (not one of
            :data:`QUICK_METHODS` for one trial: the dispatcher does not tell of those)."""
            if write.held:
                try:
                    write.flush()
                except (BrokenPipeError, _WriteAbandoned) as exc:
                    raise _FlushFailed(exc) from None  # past the endpoint's error replies

        endpoint.dispatcher.before_call = flush_before_long_call
        endpoint.dispatcher.quick_methods = QUICK_METHODS
    if watch is not None:
        watch.before_exit = write.last_flush
    try:
        if ready_payload:  # empty with --jsonrpc strict: the parent speaks first
            write.send([ready_payload])
        at_eof = False
        while not (at_eof or endpoint.closing or stop.requested):
            write.flush()
            if spin_s:
                await_readable(in_fd, spin_s, stopped)
                if stop.requested:
                    break
            try:
                stop.reading = True
                wait_for_input()
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
            started = clock()  # one clock per frame: a frame starts when the one before ended
            for frame in frames:
                if endpoint.closing or stop.requested:
                    break
                if watch is not None:
                    watch.begin(frame)
                try:
                    payloads = endpoint.handle(frame)
                except _FlushFailed as failed:
                    raise failed.error from None
                finally:
                    if watch is not None:
                        watch.end()
                ended = clock()
                if gather and ended - started < gather_s:
                    write.hold(payloads, started)
                else:
                    write.send(payloads)
                started = ended
            del frames
        write.flush()
    except BrokenPipeError:
        log.info("parent_gone")
        return EXIT_PARENT_GONE
    except _WriteAbandoned as abandoned:
        log.warning("reply_abandoned", reason=stop.signal, unwritten_bytes=abandoned.unwritten)
    log.info("stopped", reason=stop.signal or ("shutdown" if endpoint.closing else "eof"))
    return EXIT_OK


def _input_waiter(in_fd: int, out_fd: int) -> Callable[[], None]:
    """Wait until stdin has bytes (or EOF); a stdout whose reader is gone ends the wait with
    ``BrokenPipeError``. One ``poll`` per read, not per frame: this is the parent-gone check."""
    poller = select.poll()
    poller.register(in_fd, select.POLLIN)
    if out_fd != in_fd:
        poller.register(out_fd, 0)  # errors and hang-ups are always reported

    def wait() -> None:
        readable = False
        while not readable:
            for fd, events in poller.poll():
                if fd != in_fd and events & _GONE:
                    raise BrokenPipeError(errno.EPIPE, "stdout closed")
                readable = readable or fd == in_fd

    return wait


class _FlushFailed(BaseException):
    """A flush inside a frame (before a long call) failed; carried out of the endpoint, which
    would otherwise answer it as the frame's error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _WriteAbandoned(Exception):
    """A stop signal came and the parent did not read the reply within the grace period."""

    def __init__(self, unwritten: int) -> None:
        super().__init__(unwritten)
        self.unwritten = unwritten


class _Writer:
    """Writes whole frames to stdout; never blocks in the kernel, so signals are always seen.

    The first ``write`` is tried at once (a pipe with room takes the whole frame); only after a
    partial write or ``EAGAIN`` does it wait with ``poll`` for room. While waiting, a stop signal
    starts a grace period that restarts whenever the parent reads (:data:`STOP_WRITE_GRACE_S`).
    Replies may be held (``hold``) and written together by ``flush``, after ``commit``. It is
    given payloads and frames them itself (``encode_all``: one ``join`` for all held ones).
    """

    def __init__(
        self,
        fd: int,
        encode_all: Callable[[list[bytes]], bytes],
        stop: _StopFlag,
        commit: Callable[[], None] | None,
        hold_s: float,
    ) -> None:
        self._fd = fd
        self._encode_all = encode_all
        self._hold_s = hold_s
        self._stop = stop
        self._commit = commit
        self._send = _sender(fd)
        self._blocking = stat.S_ISFIFO(os.fstat(fd).st_mode) and os.get_blocking(fd)
        """A pipe :func:`own_pipe_end` could not reopen: written only as far as it has room."""
        self._poll: Any = None
        self.held: list[bytes] = []
        """Payloads held for the next flush."""
        self._held_bytes = 0
        self._held_since = 0.0
        self._exiting = False
        self._lock = threading.Lock()  # the frame-budget watchdog may write a last flush

    def send(self, payloads: list[bytes]) -> None:
        """Write ``payloads`` now (in one write), after any held replies."""
        if self.held:
            self.held += payloads
            self.flush()
            return
        if not payloads:
            return
        if self._commit is not None:
            self._commit()
        self._write(self._encode_all(payloads))

    def hold(self, payloads: list[bytes], now: float) -> None:
        """Keep ``payloads`` for the next flush (which comes at once past the bounds)."""
        held = self.held
        if not held:
            self._held_since = now
        held += payloads
        for payload in payloads:
            self._held_bytes += len(payload)
        if self._held_bytes >= GATHER_MAX_BYTES or now - self._held_since > self._hold_s:
            self.flush()

    def flush(self) -> None:
        """Commit, then write the held replies (the commit also covers notifications, whose
        writes no reply waits for)."""
        if self._commit is not None:
            self._commit()
        held = self.held
        if not held:
            return
        self.held = []
        self._held_bytes = 0
        self._write(self._encode_all(held))

    def last_flush(self) -> None:
        """From another thread, just before the process exits: write what is held (within the
        grace) and keep the main thread from starting another write (the lock stays held, so
        no frame is cut by the exit)."""
        self._exiting = True
        if not self._lock.acquire(timeout=STOP_WRITE_GRACE_S):
            return
        held, self.held = self.held, []
        if not held:
            return
        try:
            if self._commit is not None:
                self._commit()
            self._write_unlocked(self._encode_all(held))
        except (OSError, _WriteAbandoned):
            pass  # the process exits anyway

    def _write(self, data: bytes) -> None:
        with self._lock:
            self._write_unlocked(data)

    def _write_unlocked(self, data: bytes) -> None:
        if self._blocking:
            self._write_rest(memoryview(data))
            return
        try:
            written = self._send(data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            self._write_rest(memoryview(data)[written:])

    def _write_rest(self, view: memoryview) -> None:
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLOUT)
        progress_at = time.monotonic()
        while view:
            self._wait_for_room(len(view), progress_at)
            try:
                written = self._send(view[: select.PIPE_BUF] if self._blocking else view)
            except BlockingIOError:
                continue
            view = view[written:]
            progress_at = time.monotonic()

    def _wait_for_room(self, unwritten: int, progress_at: float) -> None:
        while True:
            stop = self._stop
            if stop.requested or self._exiting:
                now = time.monotonic()
                since = now - max(stop.at, progress_at)
                if since > STOP_WRITE_GRACE_S or (
                    stop.requested and now - stop.at > STOP_WRITE_LIMIT_S
                ):
                    raise _WriteAbandoned(unwritten)
            for _, events in self._poll.poll(_POLL_TICK_MS):
                if events & select.POLLERR:
                    raise BrokenPipeError(errno.EPIPE, "stdout closed")
                if events & select.POLLOUT:
                    return


def _sender(fd: int) -> Callable[[bytes | memoryview], int]:
    """The call that writes to ``fd`` without blocking: ``os.write`` on a non-blocking pipe,
    ``send(MSG_DONTWAIT)`` on a socket (its blocking mode is shared with the parent too)."""
    if stat.S_ISSOCK(os.fstat(fd).st_mode):
        sock = socket.socket(fileno=os.dup(fd))

        def send(data: bytes | memoryview) -> int:
            return sock.send(data, socket.MSG_DONTWAIT)

        return send
    return functools.partial(os.write, fd)


def _install_signal_handlers() -> _StopFlag:
    """SIGTERM, SIGINT and SIGHUP stop the loop after the frame being answered.

    While waiting for input the handler raises to leave the wait at once; while answering a frame
    it only sets the flag, so that frame still gets its whole reply (the loop, the batch and the
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
