"""``--frame-budget SECONDS``: a watchdog that ends a worker stuck in one frame.

Operator limits bound what one frame may ask for, but a sampler's cost also grows with the study's
history, and an Optuna call cannot be interrupted safely from inside (it may hold a storage lock or
be halfway through writing a trial). So the last line of defence is outside the call: a thread
that sees a frame running longer than the budget logs which frame it was and ends the process with
:data:`~bridge_worker.io.server.EXIT_FRAME_BUDGET`, a status of its own, so the supervisor restarts
the worker (and the operator learns which request to bound) instead of waiting forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec

from bridge_worker.wire.framing import Frame, Oversize

OverrunHandler = Callable[[float, Frame], None]
"""Called from the watchdog thread with the seconds the frame has run and the frame itself."""

FRAME_HEAD_BYTES = 300
"""How much of an overrunning frame the debug log shows."""


class _Envelope(msgspec.Struct):
    method: str | None = None
    id: int | float | str | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


class FrameWatch:
    """Tracks the frame being answered; with a budget, a thread watches it."""

    def __init__(self, budget_s: float | None, on_overrun: OverrunHandler) -> None:
        self.budget_s = budget_s
        self._on_overrun = on_overrun
        self._frame: Frame | None = None
        self.before_exit: Callable[[], None] | None = None
        """Called from the watchdog thread before ``on_overrun`` (the I/O loop writes the
        replies it holds: every exit path flushes)."""
        self._started = 0.0
        if budget_s is not None:
            thread = threading.Thread(target=self._watch, name="frame-budget", daemon=True)
            thread.start()

    def begin(self, frame: Frame) -> None:
        self._started = time.monotonic()
        self._frame = frame

    def end(self) -> None:
        self._frame = None

    def _watch(self) -> None:
        assert self.budget_s is not None
        tick = min(0.25, self.budget_s / 4)
        while True:
            time.sleep(tick)
            frame = self._frame
            if frame is None:
                continue
            elapsed = time.monotonic() - self._started
            if elapsed > self.budget_s and frame is self._frame:
                if self.before_exit is not None:
                    self.before_exit()
                self._on_overrun(elapsed, frame)


def frame_summary(frame: Frame) -> dict[str, object]:
    """What the error log says of an overrunning frame: its method, id and size, never its
    params (logs carry no request data above debug; PROTOCOL.md, "What is logged")."""
    if isinstance(frame, Oversize):
        return {"frame_bytes": None}
    try:
        envelope = _decode_envelope(frame)
        method, request_id = envelope.method, envelope.id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        method, request_id = None, None  # a batch, or not a request
    return {"method": method, "id": request_id, "frame_bytes": len(frame)}


def frame_head(frame: Frame) -> str:
    """The start of a frame as text, for the debug log line of an overrun."""
    if isinstance(frame, Oversize):
        return f"<frame over {frame.limit} bytes>"
    return frame[:FRAME_HEAD_BYTES].decode("utf-8", "backslashreplace")
