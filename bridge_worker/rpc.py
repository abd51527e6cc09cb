"""JSON-RPC 2.0 over frames: one frame's bytes in, the frames to write back out.

Sans-IO: no file descriptors here. The endpoint decodes the envelope, asks the dispatcher for the
result, and is the one place where any failure becomes an error reply, so no error can escape as
a crash or as half a frame. Batches, notifications and the error notification for a failed
notification (a parent's fire-and-forget call must never fail silently) are handled here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from bridge_worker import schema
from bridge_worker.dispatch import Dispatcher
from bridge_worker.errors import BridgeError, ErrorKind, as_bridge_error
from bridge_worker.framing import Frame, Oversize
from bridge_worker.limits import nesting_depth
from bridge_worker.schema import (
    ErrorNotificationParams,
    ErrorObject,
    ErrorReply,
    Notification,
    RequestId,
    ResultReply,
)

_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What a decoder raises for bytes it cannot read: msgspec raises ``UnicodeDecodeError`` (not
``DecodeError``) for invalid UTF-8 inside a string, and ``RecursionError`` for nesting deeper than
its stack allows (``--max-depth`` keeps frames well below that)."""

_encode = schema.encoder.encode
_decode_envelope = schema.envelope_decoder.decode
_decode_batch = schema.batch_decoder.decode


class Endpoint:
    """Answers frames. ``closing`` turns true once a method that ends the session has answered."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.limits = dispatcher.registry.limits
        self.closing = False
        self.should_stop: Callable[[], bool] = lambda: False
        """Asked between the items of a batch: once true, the items not started get no work."""
        self._log = structlog.get_logger("bridge_worker.rpc")

    def handle(self, frame: Frame) -> list[bytes]:
        """The payloads to write for one frame: error notifications first, then the reply
        (nothing for a notification that succeeded)."""
        if isinstance(frame, Oversize):
            error = BridgeError(
                ErrorKind.FRAME_TOO_LARGE,
                f"frame longer than {frame.limit} bytes; it was discarded",
                limit=frame.limit,
            )
            return [_error_reply(None, error)]
        out: list[bytes] = []
        try:
            reply = self._handle_frame(frame, out)
        except Exception as exc:  # a bug in this module itself must not end the worker either
            self._log.error("internal_error", exc_info=exc)
            reply = _error_reply(None, as_bridge_error(exc))
        if reply is not None:
            out.append(reply)
        return out

    def _handle_frame(self, frame: bytes, out: list[bytes]) -> bytes | None:
        max_depth = self.limits.max_depth
        depth = nesting_depth(frame, max_depth)
        if depth > max_depth:
            error = BridgeError(
                ErrorKind.LIMIT_EXCEEDED,
                f"frame nested {depth} levels deep; this worker allows at most {max_depth} "
                "(--max-depth)",
                limit="max_depth", value=depth, max=max_depth,
            )
            return _error_reply(_salvage_id(frame), error)
        if frame.lstrip()[:1] == b"[":
            return self._handle_batch(frame, out)
        return self._handle_one(frame, out)

    def _handle_batch(self, frame: bytes, out: list[bytes]) -> bytes | None:
        try:
            items = _decode_batch(frame)
        except _NOT_JSON as exc:
            return _error_reply(None, BridgeError(ErrorKind.PARSE_ERROR, f"invalid JSON: {exc}"))
        if not items:
            return _error_reply(None, BridgeError(ErrorKind.INVALID_REQUEST, "empty batch"))
        try:
            self.limits.check("max_batch", "requests in the batch", len(items))
        except BridgeError as error:
            return _error_reply(None, error)
        replies = []
        for item in items:
            reply = self._skip(item, out) if self.should_stop() else self._handle_one(item, out)
            if reply is not None:
                replies.append(reply)
        return b"[" + b",".join(replies) + b"]" if replies else None

    def _handle_one(self, raw: bytes | msgspec.Raw, out: list[bytes]) -> bytes | None:
        try:
            envelope = _decode_envelope(raw)
        except msgspec.ValidationError as exc:
            # The typed decoder may hit a wrong type before it notices the bytes are not JSON.
            try:
                msgspec.json.decode(raw)
            except _NOT_JSON as not_json:
                error = BridgeError(ErrorKind.PARSE_ERROR, f"invalid JSON: {not_json}")
                return _error_reply(None, error)
            error = BridgeError(ErrorKind.INVALID_REQUEST, f"not a valid request: {exc}")
            return _error_reply(_salvage_id(raw), error)
        except _NOT_JSON as exc:
            return _error_reply(None, BridgeError(ErrorKind.PARSE_ERROR, f"invalid JSON: {exc}"))
        request_id = envelope.id
        try:
            method = self.dispatcher.lookup(envelope.method)
            params = envelope.params
            result = self.dispatcher.call(method, None if params is msgspec.UNSET else params)
        except Exception as exc:  # every failure becomes a reply; none may end the worker
            error = as_bridge_error(exc)
            if error.kind is ErrorKind.INTERNAL_ERROR:
                self._log.error("internal_error", method=envelope.method, exc_info=exc)
            else:
                self._log.debug("request_failed", method=envelope.method, id=request_id,
                                kind=error.kind.kind, message=error.message)
            if isinstance(request_id, msgspec.UnsetType):
                out.append(_error_notification(envelope.method, error))
                return None
            return _error_reply(request_id, error)
        if method.ends_session:
            self.closing = True
        if isinstance(request_id, msgspec.UnsetType):
            return None
        return _encode(ResultReply(id=request_id, result=result))


    def _skip(self, raw: msgspec.Raw, out: list[bytes]) -> bytes | None:
        """A batch item the worker stopped before: ``worker_stopping``, as a reply for a request
        and as an error notification for a notification (which must not vanish silently)."""
        try:
            envelope = _decode_envelope(raw)
        except (msgspec.ValidationError, *_NOT_JSON):
            return self._handle_one(raw, out)  # malformed: its error costs no work
        error = BridgeError(
            ErrorKind.WORKER_STOPPING,
            "the worker is stopping (signal) and did not start this request; send it again to "
            "another worker",
        )
        if isinstance(envelope.id, msgspec.UnsetType):
            out.append(_error_notification(envelope.method, error))
            return None
        return _error_reply(envelope.id, error)


def _error_object(error: BridgeError) -> ErrorObject:
    return ErrorObject(
        code=error.kind.code, message=error.message, data={"kind": error.kind.kind, **error.data}
    )


def _error_reply(request_id: RequestId | None, error: BridgeError) -> bytes:
    return _encode(ErrorReply(id=request_id, error=_error_object(error)))


def _error_notification(method: str | None, error: BridgeError) -> bytes:
    params = ErrorNotificationParams(method=method, error=_error_object(error))
    return _encode(Notification(method="error", params=params))


def _salvage_id(raw: bytes | msgspec.Raw) -> RequestId | None:
    """The id of a malformed request, when it has a usable one, so the parent can match the
    error to its call (JSON-RPC: null when it cannot be determined)."""
    try:
        obj: Any = msgspec.json.decode(raw)
    except _NOT_JSON:
        return None
    request_id = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(request_id, str) or (type(request_id) is int):
        return request_id
    return None
