"""A small Python client: spawn a worker process and call it with typed methods.

    with Worker.spawn() as w:
        w.create("s", sampler={"type": "tpe", "seed": 1}, search_space={...})
        for trial in w.ask("s", n=4):
            w.tell("s", trial.number, objective(trial.params))

Replies are decoded into the same msgspec structs the worker encodes them from
(:mod:`bridge_worker.wire.schema`), and error replies are raised as :class:`WorkerError` carrying
the stable ``kind``. ``send``/``receive`` expose pipelining; ``batch`` sends a JSON-RPC batch.
Every method of the protocol has a typed helper taking every one of its params (a test walks the
JSON Schema to keep it so). numpy scalars and 1-D arrays are accepted wherever a value goes.
A worker that exits raises :class:`WorkerExited` with its exit status and its last stderr lines.

Every call has a deadline: ``timeout`` seconds (``DEFAULT_TIMEOUT_S``, 120 s) per worker, per
``call``/``receive``/``batch``, or for a block of calls (``with w.timeouts(600): w.plot(...)``);
``None`` waits forever. A call that times out raises :class:`WorkerTimeout`; its late reply is
dropped when it arrives, so the next call still gets its own. ``spawn`` waits at most
``ready_timeout`` (``SPAWN_TIMEOUT_S``, 60 s) for the worker to come up. Writing never waits on a
worker that is itself waiting for us to read: while a frame does not fit in the pipe, the client
reads (and keeps) what the worker writes, so pipelining large frames with ``send`` cannot
deadlock.

Frames are cut and written by the worker's own sans-IO framing (:mod:`bridge_worker.wire.framing`),
and replies are waited for with the worker's own spin-poll (:mod:`bridge_worker.io.polling`): one
framing for both ends. Only :class:`Worker` touches the pipes; the client never imports Optuna.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from bridge_worker.io.polling import await_readable, spin_seconds
from bridge_worker.wire import schema
from bridge_worker.wire.framing import Frame, Framing, frame_encoder, make_decoder
from bridge_worker.wire.schema import (
    AddTrialsResult,
    ArtifactGetResult,
    ArtifactInfo,
    ArtifactPutResult,
    ArtifactsResult,
    AskedTrial,
    AskResult,
    CopyTrialsResult,
    CreateResult,
    DeleteResult,
    EnqueueResult,
    ErrorObject,
    ImportanceResult,
    ImportResult,
    ListResult,
    PlotResult,
    ReadyParams,
    RenewResult,
    ReportResult,
    RequestId,
    SetAttrsResult,
    SetStopResult,
    StudySummary,
    TellResult,
    TrialInfo,
    TrialsResult,
)

T = TypeVar("T")

SPIN_US = 500
"""How long the client polls for a reply before sleeping (0: never poll)."""

STDERR_TAIL_LINES = 20
"""How many of the worker's last stderr lines a :class:`WorkerExited` carries."""

EXIT_WAIT_S = 5.0
"""How long to wait for the exit status of a worker that closed its stdout."""

DEFAULT_TIMEOUT_S = 120.0
"""Seconds a call waits for its reply (writing included) unless told otherwise."""

SPAWN_TIMEOUT_S = 60.0
"""Seconds ``spawn`` waits for a new worker to come up (its ``ready`` frame, or a ``ping`` reply
in strict mode, which sends no ``ready``)."""

_NO_LIMIT = sys.maxsize
"""The client's decoders take replies of any size: the worker bounds them (--max-reply-bytes)."""


def _framing(name: str) -> Framing:
    if name not in ("line", "packet4"):
        raise ValueError(f"framing is line or packet4, not {name!r}")
    return "packet4" if name == "packet4" else "line"


def _enc_hook(obj: Any) -> Any:
    """numpy scalars as the Python numbers they hold, 1-D arrays as lists: ML code hands them
    over all the time. numpy is looked up in ``sys.modules``, so the client never imports it."""
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray) and obj.ndim == 1:
            return obj.tolist()
    raise TypeError(f"Encoding objects of type {type(obj).__name__} is unsupported")


_encode = msgspec.json.Encoder(enc_hook=_enc_hook).encode


class WorkerError(Exception):
    """An error reply (or error notification) from the worker."""

    def __init__(self, error: ErrorObject) -> None:
        super().__init__(f"{error.data.get('kind')}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.data = error.data
        self.kind: str = error.data.get("kind", "")


class StudyStopped(WorkerError):
    """``ask`` of a study whose stop rule holds: ``rule`` names it, ``detail`` says why. Trials
    still running can be told; ``set_stop`` changes or clears the rules."""

    def __init__(self, error: ErrorObject) -> None:
        super().__init__(error)
        self.rule: str = error.data.get("rule", "")
        self.detail: dict[str, Any] = error.data.get("detail", {})


_ERRORS_BY_KIND: dict[str, type[WorkerError]] = {"study_stopped": StudyStopped}


class WorkerExited(ConnectionError):
    """The worker is gone: it closed its stdout while a reply was awaited, or its stdin while a
    request was written. ``status`` is its exit status (None if it is somehow still running;
    negative: killed by that signal) and ``stderr_lines`` its last lines on stderr (when the
    client captured them: ``spawn`` without ``stderr=``), which say why."""

    def __init__(self, status: int | None, stderr_lines: Sequence[str] = ()) -> None:
        self.status = status
        self.stderr_lines = list(stderr_lines)
        message = (
            f"worker exited with status {status}"
            if status is not None
            else "worker closed its pipes but has not exited"
        )
        if self.stderr_lines:
            message += "; its last stderr lines:\n" + "\n".join(self.stderr_lines)
        super().__init__(message)


class WorkerTimeout(TimeoutError):
    """No reply (or no room to write the request) within the call's timeout. The worker is left
    running; the late reply is dropped when it arrives."""


def _is_strict(args: Sequence[str]) -> bool:
    """Whether the worker's arguments select ``--jsonrpc strict`` (no ``ready`` frame)."""
    args = list(args)
    for index, arg in enumerate(args):
        if arg == "--jsonrpc=strict" or (
            arg == "--jsonrpc" and args[index + 1 : index + 2] == ["strict"]
        ):
            return True
    return False


class _StderrTail:
    """Copies the worker's stderr to ours as it arrives, keeping the last lines for
    :class:`WorkerExited` (the usage message of a worker that refused its arguments, a crash)."""

    def __init__(self, stream: IO[bytes], lines: int = STDERR_TAIL_LINES) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._thread = threading.Thread(
            target=self._pump, args=(stream,), name="optuna-bridge-stderr", daemon=True
        )
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with stream:
            for line in stream:
                with contextlib.suppress(OSError):
                    os.write(2, line)
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def last(self, timeout: float = 2.0) -> list[str]:
        """The last lines, once the worker's stderr is closed (it exited) or after ``timeout``."""
        self._thread.join(timeout)
        return list(self.lines)


class Reply(Struct):
    """Any frame the worker writes: a reply (``id`` with ``result`` or ``error``) or a
    notification (``method`` with ``params``)."""

    jsonrpc: str
    id: int | float | str | UnsetType | None = UNSET
    result: Raw | UnsetType = UNSET
    error: ErrorObject | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: Raw | UnsetType = UNSET


_reply_decoder = msgspec.json.Decoder(Reply)
_batch_reply_decoder = msgspec.json.Decoder(list[Reply])
_result_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_result(raw: Raw, result_type: type[T]) -> T:
    decoder = _result_decoders.get(result_type)
    if decoder is None:
        decoder = _result_decoders[result_type] = msgspec.json.Decoder(result_type)
    return decoder.decode(raw)  # type: ignore[no-any-return]


class Worker:
    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        framing: str = "line",
        spin_us: int = SPIN_US,
        stderr_tail: _StderrTail | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        ready_timeout: float | None = SPAWN_TIMEOUT_S,
        strict: bool = False,
    ) -> None:
        """``timeout``: the default deadline of every call; ``ready_timeout``: how long to wait
        for the worker to come up; ``strict``: the worker runs ``--jsonrpc strict`` (it sends no
        ``ready`` frame, so a ``ping`` stands for it and ``ready`` is None)."""
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self._stderr_tail = stderr_tail
        self.framing = framing
        self.timeout = timeout
        """The deadline of a call (seconds; None: wait forever)."""
        self._stdin: IO[bytes] = proc.stdin
        self._stdout: IO[bytes] = proc.stdout
        self._fd = proc.stdout.fileno()
        self._wfd = proc.stdin.fileno()
        os.set_blocking(self._wfd, False)  # our own pipe; see write_frame
        self._abandoned: set[Any] = set()
        """Ids of calls that timed out: their replies are dropped when they come."""
        self._abandoned_batches = 0
        self._decoder = make_decoder(_framing(framing), _NO_LIMIT)
        self._line = framing == "line"
        self._encode_frame = frame_encoder(_framing(framing))
        self._frames: collections.deque[Frame] = collections.deque()
        self._spin_s = spin_seconds(spin_us)
        self._next_id = 1
        self.notifications: list[Reply] = []
        """Error notifications (failed notifications of ours) seen while reading replies."""
        self.ready: ReadyParams | None = None
        """The worker's ``ready`` frame (None in strict mode, which sends none)."""
        try:
            if strict:
                self.call("ping", None, schema.PingResult, timeout=ready_timeout)
                return
            ready = self._read_frame(_deadline(ready_timeout))
        except WorkerTimeout:
            hint = (
                ""
                if strict
                else (
                    " (a worker started with --jsonrpc strict sends no ready frame: pass its "
                    "arguments to spawn, or strict=True)"
                )
            )
            raise WorkerTimeout(
                f"the worker did not come up within {ready_timeout} s{hint}"
            ) from None
        if ready.method != "ready" or isinstance(ready.params, UnsetType):
            raise RuntimeError(f"expected a ready notification first, got {ready!r}")
        self.ready = decode_result(ready.params, ReadyParams)

    @classmethod
    def spawn(
        cls,
        storage: str = "memory",
        framing: str = "line",
        args: Sequence[str] = (),
        python: str = sys.executable,
        log_level: str = "warning",
        spin_us: int = SPIN_US,
        stderr: int | IO[bytes] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        ready_timeout: float | None = SPAWN_TIMEOUT_S,
    ) -> Worker:
        """Start ``python -m bridge_worker`` and wait (at most ``ready_timeout`` s, else
        :class:`WorkerTimeout` and the process is killed) until it is up: its ``ready`` frame,
        or a ``ping`` reply when ``args`` select ``--jsonrpc strict``. ``timeout`` is the
        default deadline of every call."""
        command = [
            python,
            "-m",
            "bridge_worker",
            "--storage",
            storage,
            "--framing",
            framing,
            "--log-level",
            log_level,
            *args,
        ]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr is None else stderr,
            env=dict(env) if env is not None else None,
        )
        tail = _StderrTail(proc.stderr) if stderr is None and proc.stderr is not None else None
        try:
            return cls(
                proc,
                framing,
                spin_us,
                tail,
                timeout=timeout,
                ready_timeout=ready_timeout,
                strict=_is_strict(args),
            )
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise

    # -- framing -------------------------------------------------------------------------------

    def write_frame(self, payload: bytes, deadline: float | None = None) -> None:
        """Write one frame (``payload`` framed as the worker was started with) by ``deadline``
        (a ``time.monotonic()``; None: no deadline).

        The pipe is non-blocking: a frame that does not fit is written as the worker reads it,
        and meanwhile whatever the worker writes is read and kept for ``receive``. Otherwise a
        worker blocked writing replies nobody reads would never read the rest of our frame."""
        data = memoryview(self._encode_frame(payload))
        while data:
            try:
                data = data[os.write(self._wfd, data) :]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):  # OSError: we closed stdin ourselves
                raise self._exited() from None
            readable, writable, _ = select.select([self._fd], [self._wfd], [], _remaining(deadline))
            if not readable and not writable:
                raise WorkerTimeout(f"the worker read none of our request for {self._waited()}")
            if readable:
                self._read_some()

    def read_payload(self, deadline: float | None = None) -> bytes:
        """The next frame's bytes as written by the worker, framing removed (no ``\\n``),
        by ``deadline`` (a ``time.monotonic()``; None: wait forever)."""
        frames = self._frames
        while not frames:
            self._fill(deadline)
        frame = frames.popleft()
        assert isinstance(frame, bytes)  # the client's decoder has no size limit
        return frame

    def _fill(self, deadline: float | None) -> None:
        """Read what the worker wrote. A reply usually follows within microseconds, so poll for
        ``spin_us`` before sleeping in ``read``: waking a sleeping process costs more here."""
        ready = bool(self._spin_s) and await_readable(self._fd, self._spin_s)
        if (
            not ready
            and deadline is not None
            and not select.select([self._fd], [], [], _remaining(deadline))[0]
        ):
            raise WorkerTimeout(f"no reply from the worker within {self._waited()}")
        self._read_some()

    def _read_some(self) -> None:
        data = os.read(self._fd, 1 << 16)
        if not data:
            raise self._exited()  # an unterminated last line is no frame (PROTOCOL.md)
        if self._line and data.find(b"\n") == len(data) - 1 > 0 and not self._decoder.pending:
            self._frames.append(data[:-1])  # the usual case: exactly one whole reply
            return
        self._frames.extend(self._decoder.feed(data))

    def _waited(self) -> str:
        return f"the timeout ({self.timeout} s by default)"

    def _read_frame(self, deadline: float | None = None) -> Reply:
        return _reply_decoder.decode(self.read_payload(deadline))

    def _exited(self) -> WorkerExited:
        try:
            status: int | None = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            status = None
        lines = self._stderr_tail.last() if self._stderr_tail is not None else []
        return WorkerExited(status, lines)

    # -- JSON-RPC ------------------------------------------------------------------------------

    def request_frame(
        self, method: str, params: Mapping[str, Any] | None = None, notify: bool = False
    ) -> tuple[RequestId | None, dict[str, Any]]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        request_id = None
        if not notify:
            request_id = self._next_id
            self._next_id += 1
            request["id"] = request_id
        if params:
            request["params"] = params
        return request_id, request

    def send(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        notify: bool = False,
        *,
        timeout: float | UnsetType | None = UNSET,
    ) -> RequestId | None:
        """Write one request (or notification) without waiting for its reply; returns its id.
        Waits at most ``timeout`` (default: the worker's) for room in the pipe."""
        request_id, request = self.request_frame(method, params, notify)
        self.write_frame(_encode(request), self._deadline(timeout))
        return request_id

    def receive(self, *, timeout: float | UnsetType | None = UNSET) -> Reply:
        """The next reply, within ``timeout`` (default: the worker's); error notifications on
        the way are kept in ``notifications``, late replies of timed-out calls dropped."""
        return self._receive_by(self._deadline(timeout))

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        result_type: type[T] = Any,  # type: ignore[assignment]
        *,
        timeout: float | UnsetType | None = UNSET,
    ) -> T:
        """One request and its reply, within ``timeout`` seconds (default: the worker's
        ``timeout``; None: wait forever), else :class:`WorkerTimeout`."""
        deadline = self._deadline(timeout)
        request_id, request = self.request_frame(method, params)
        try:
            self.write_frame(_encode(request), deadline)
            reply = self._receive_by(deadline)
        except WorkerTimeout:
            self._abandoned.add(request_id)
            raise
        if reply.id != request_id:
            raise RuntimeError(f"reply for id {reply.id!r} while waiting for {request_id!r}")
        return unwrap(reply, result_type)

    def _receive_by(self, deadline: float | None) -> Reply:
        while True:
            frame = self._read_frame(deadline)
            if not isinstance(frame.method, UnsetType):
                self.notifications.append(frame)
            elif frame.id in self._abandoned:
                self._abandoned.discard(frame.id)
            else:
                return frame

    def batch(
        self,
        calls: Iterable[tuple[str, Mapping[str, Any] | None]],
        *,
        timeout: float | UnsetType | None = UNSET,
    ) -> list[Reply]:
        """Send one JSON-RPC batch; the replies come back as one array, in request order
        (within ``timeout``, default: the worker's)."""
        deadline = self._deadline(timeout)
        frames = [self.request_frame(method, params)[1] for method, params in calls]
        try:
            self.write_frame(_encode(frames), deadline)
            while True:
                payload = self.read_payload(deadline)
                if payload.lstrip()[:1] == b"[":
                    if self._abandoned_batches:
                        self._abandoned_batches -= 1
                        continue
                    return _batch_reply_decoder.decode(payload)
                self.notifications.append(_reply_decoder.decode(payload))
        except WorkerTimeout:
            self._abandoned_batches += 1
            raise

    @contextlib.contextmanager
    def timeouts(self, seconds: float | None) -> Iterator[None]:
        """Every call in the block waits up to ``seconds`` (a long ``plot``, a large import)."""
        saved, self.timeout = self.timeout, seconds
        try:
            yield
        finally:
            self.timeout = saved

    def _deadline(self, timeout: float | UnsetType | None) -> float | None:
        return _deadline(self.timeout if isinstance(timeout, UnsetType) else timeout)

    # -- typed methods -------------------------------------------------------------------------

    def ping(self) -> bool:
        return bool(self.call("ping", None, schema.PingResult).pong)

    def create(
        self,
        study: str,
        direction: str | None = None,
        *,
        directions: Sequence[str] | None = None,
        sampler: Mapping[str, Any] | None = None,
        pruner: Mapping[str, Any] | None = None,
        search_space: Mapping[str, Any] | None = None,
        load_if_exists: bool = False,
        user_attrs: Mapping[str, Any] | None = None,
        metric_names: Sequence[str] | None = None,
        stop: Mapping[str, Any] | None = None,
    ) -> CreateResult:
        """``stop``: stop rules (``target``, ``patience``, ``min_delta``, ``max_trials``,
        ``max_seconds``); once one holds, ``ask`` raises :class:`StudyStopped`."""
        params = _params(
            study=study,
            direction=direction,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
            search_space=search_space,
            load_if_exists=load_if_exists or None,
            user_attrs=user_attrs,
            metric_names=metric_names,
            stop=stop,
        )
        return self.call("create", params, CreateResult)

    def ask(
        self,
        study: str,
        n: int = 1,
        search_space: Mapping[str, Any] | None = None,
        fixed_params: Mapping[str, Any] | None = None,
        *,
        lease_s: float | None = None,
        retry: int | None = None,
        client: str | None = None,
    ) -> list[AskedTrial]:
        """``lease_s``: the worker fails each trial not told, reported or renewed in time (and
        with ``retry`` asks its parameters again); ``AskedTrial.lease_end`` says until when.
        ``client``: this client's stable id; its trials still running from before a restart are
        returned first, with ``resumed`` True."""
        params = _params(
            study=study,
            n=n,
            search_space=search_space,
            fixed_params=fixed_params,
            lease_s=lease_s,
            retry=retry,
            client=client,
        )
        return self.call("ask", params, AskResult).trials

    def renew(self, study: str, number: int, lease_s: float | None = None) -> RenewResult:
        """Extend a running trial's lease from now (by ``lease_s`` or its own length)."""
        return self.call("renew", _params(study=study, number=number, lease_s=lease_s), RenewResult)

    def add_trials(self, study: str, trials: Sequence[Mapping[str, Any]]) -> list[int]:
        """Record trials evaluated elsewhere (``{"params", "value"|"values", "state",
        "user_attrs", "intermediate_values", "constraints"}``); returns their numbers."""
        return self.call(
            "add_trials", {"study": study, "trials": list(trials)}, AddTrialsResult
        ).numbers

    def plot(
        self,
        study: str,
        kind: str,
        format: str = "png",
        *,
        params: Sequence[str] | None = None,
        objective: int | None = None,
        width: int | None = None,
        height: int | None = None,
        reference_point: Sequence[float] | None = None,
    ) -> bytes | dict[str, Any]:
        """A figure of ``optuna.visualization``: the image bytes for ``png``/``svg``, the
        plotly figure (a dict for plotly.js) for ``plotly``."""
        request = _params(
            study=study,
            kind=kind,
            format=format,
            params=params,
            objective=objective,
            width=width,
            height=height,
            reference_point=reference_point,
        )
        result = self.call("plot", request, PlotResult)
        if isinstance(result.figure, Raw):
            figure: dict[str, Any] = msgspec.json.decode(result.figure)
            return figure
        assert isinstance(result.data, str)
        return base64.b64decode(result.data)

    def tell(
        self,
        study: str,
        number: int,
        value: float | None = None,
        *,
        values: Sequence[float] | None = None,
        state: str = "complete",
        skip_if_finished: bool = False,
        user_attrs: Mapping[str, Any] | None = None,
        constraints: Sequence[float] | None = None,
    ) -> TellResult:
        """``values`` for several objectives (a list or a 1-D numpy array); ``constraints``:
        feasible when all are <= 0."""
        params = _params(
            study=study,
            number=number,
            value=value,
            values=values,
            state=state,
            skip_if_finished=skip_if_finished or None,
            user_attrs=user_attrs,
            constraints=constraints,
        )
        return self.call("tell", params, TellResult)

    def best(self, study: str, *, datetimes: bool = False) -> list[TrialInfo]:
        params = _params(study=study, datetimes=datetimes or None)
        return self.call("best", params, TrialsResult).trials

    def trials(
        self,
        study: str,
        states: Sequence[str] | None = None,
        *,
        datetimes: bool = False,
        offset: int | None = None,
        limit: int | None = None,
    ) -> list[TrialInfo]:
        """The study's trials in number order; ``offset``/``limit`` select one page. Each running
        trial asked with a lease carries its ``lease_end``."""
        params = _params(
            study=study, states=states, datetimes=datetimes or None, offset=offset, limit=limit
        )
        return self.call("trials", params, TrialsResult).trials

    def iter_trials(
        self, study: str, states: Sequence[str] | None = None, page_size: int = 500
    ) -> Iterator[TrialInfo]:
        """Every trial of a study, fetched ``page_size`` at a time (each reply stays small, so
        a study too large for one ``--max-reply-bytes`` reply can still be read whole)."""
        offset = 0
        while True:
            page = self.trials(study, states, offset=offset, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def report(self, study: str, number: int, step: int, value: float) -> bool:
        """Store an intermediate value; True when the study's pruner would prune the trial."""
        params = {"study": study, "number": number, "step": step, "value": value}
        return self.call("report", params, ReportResult).should_prune

    def enqueue(
        self,
        study: str,
        params: Mapping[str, Any] | None = None,
        *,
        user_attrs: Mapping[str, Any] | None = None,
        skip_if_exists: bool = False,
    ) -> bool:
        """Queue parameters for the next ``ask``; False when ``skip_if_exists`` made it a no-op."""
        frame = _params(
            study=study,
            params=params,
            user_attrs=user_attrs,
            skip_if_exists=skip_if_exists or None,
        )
        return self.call("enqueue", frame, EnqueueResult).enqueued

    def set_attrs(
        self, study: str, user_attrs: Mapping[str, Any], *, number: int | None = None
    ) -> None:
        """Set user attrs of the study, or of its running trial ``number``."""
        params = _params(study=study, number=number, user_attrs=user_attrs)
        self.call("set_attrs", params, SetAttrsResult)

    def importance(
        self, study: str, *, params: Sequence[str] | None = None, objective: int | None = None
    ) -> dict[str, float]:
        frame = _params(study=study, params=params, objective=objective)
        return self.call("importance", frame, ImportanceResult).importances

    def metric_names(self, study: str) -> list[str] | None:
        """The study's metric names (``create`` with ``metric_names``), or None."""
        return self.call("trials", {"study": study, "states": []}, TrialsResult).metric_names

    def put_artifact(
        self,
        study: str,
        data: bytes | str | os.PathLike[str],
        name: str | None = None,
        *,
        number: int | None = None,
        content_type: str | None = None,
        chunk_size: int = 4 * 1024 * 1024,
    ) -> ArtifactPutResult:
        """Upload a file (bytes, or a path: read in ``chunk_size`` pieces) as an artifact of the
        study or of its trial ``number``; ``name`` defaults to the file's name."""
        if isinstance(data, bytes):
            if name is None:
                raise ValueError("name is required for bytes")
            chunks: Iterator[bytes] = (
                data[i : i + chunk_size] for i in range(0, max(len(data), 1), chunk_size)
            )
            digest = hashlib.sha256(data).hexdigest()
        else:
            path = Path(data)
            name = name or path.name
            digest = _file_sha256(path)
            chunks = _file_chunks(path, chunk_size)
        offset = 0
        result = None
        pending = next(chunks, b"")
        while True:
            following: bytes | None = next(chunks, None)
            final = following is None
            params = _params(
                study=study,
                number=number,
                name=name,
                content_type=content_type,
                data=base64.b64encode(pending).decode(),
                offset=offset,
                final=final,
                sha256=digest if final else None,
            )
            result = self.call("artifact_put", params, ArtifactPutResult)
            offset += len(pending)
            if following is None:
                return result
            pending = following

    def artifacts(self, study: str, number: int | None = None) -> list[ArtifactInfo]:
        """The study's artifacts (its own and every trial's), or trial ``number``'s."""
        return self.call(
            "artifacts", _params(study=study, number=number), ArtifactsResult
        ).artifacts

    def get_artifact(
        self, study: str, artifact_id: str, path: str | os.PathLike[str] | None = None
    ) -> bytes | None:
        """An artifact's bytes, or written to ``path`` (then None), fetched part by part."""
        parts: list[bytes] = []
        offset = 0
        while True:
            got = self.call(
                "artifact_get",
                {"study": study, "artifact_id": artifact_id, "offset": offset},
                ArtifactGetResult,
            )
            chunk = base64.b64decode(got.data)
            parts.append(chunk)
            offset += len(chunk)
            if got.eof:
                break
        data = b"".join(parts)
        if path is None:
            return data
        Path(path).write_bytes(data)
        return None

    def copy_trials(
        self,
        from_study: str,
        to_study: str,
        *,
        states: Sequence[str] | None = None,
        limit: int | None = None,
        params_only: bool = False,
    ) -> CopyTrialsResult:
        """Warm-start ``to_study`` with the trials of ``from_study`` (``states``: default
        complete); ``params_only`` enqueues their parameters instead of copying results."""
        params = _params(
            **{"from": from_study},
            to=to_study,
            states=states,
            limit=limit,
            params_only=params_only or None,
        )
        return self.call("copy_trials", params, CopyTrialsResult)

    def set_stop(self, study: str, stop: Mapping[str, Any] | None) -> SetStopResult:
        """Replace the study's stop rules; None clears them (asking resumes)."""
        return self.call("set_stop", {"study": study, "stop": stop}, SetStopResult)

    def list_studies(self) -> list[StudySummary]:
        return self.call("list", None, ListResult).studies

    def delete(self, study: str) -> DeleteResult:
        return self.call("delete", {"study": study}, DeleteResult)

    def export(self, study: str) -> dict[str, Any]:
        """The study's snapshot: keep it, and ``import_`` it into any worker to rebuild it."""
        snapshot: dict[str, Any] = self.call("export", {"study": study})["snapshot"]
        return snapshot

    def import_(
        self, snapshot: Mapping[str, Any], study: str | None = None, overwrite: bool = False
    ) -> ImportResult:
        params = _params(snapshot=snapshot, study=study, overwrite=overwrite)
        return self.call("import", params, ImportResult)

    def shutdown(self, timeout: float = 10) -> int:
        """Ask the worker to exit; returns its exit status."""
        self.call("shutdown")
        return self.proc.wait(timeout)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self, timeout: float = 10) -> int:
        """Close stdin (the worker exits at EOF) and wait; kill it if it does not go."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stdout.close()
        return self.proc.returncode

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.proc.pid


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline); 0 once it has passed."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def unwrap(reply: Reply, result_type: type[T]) -> T:
    """The result of a reply, or its error raised as :class:`WorkerError`."""
    if not isinstance(reply.error, UnsetType):
        raise _ERRORS_BY_KIND.get(reply.error.data.get("kind", ""), WorkerError)(reply.error)
    if isinstance(reply.result, UnsetType):
        raise RuntimeError(f"reply without result or error: {reply!r}")
    if result_type is Any:
        return msgspec.json.decode(reply.result)  # type: ignore[no-any-return]
    return decode_result(reply.result, result_type)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from iter(lambda: f.read(size), b"")


def _params(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


__all__ = [
    "Reply",
    "StudyStopped",
    "Worker",
    "WorkerError",
    "WorkerExited",
    "decode_result",
    "unwrap",
]
