"""JSON-RPC 2.0 over frames: one frame's bytes in, the frames to write back out.

Sans-IO: no file descriptors here. The endpoint decodes the envelope, asks the dispatcher for the
result, and is the one place where any failure becomes an error reply, so no error can escape as
a crash or as half a frame. Batches, notifications and the error notification for a failed
notification (a parent's fire-and-forget call must never fail silently) are handled here too.

``strict`` (``--jsonrpc strict``) is JSON-RPC 2.0 to the letter, for generic client libraries:
``"jsonrpc":"2.0"`` is required and a failed notification is only logged (kind and field, never
the frame), because the specification gives a notification no reply of any kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from msgspec import UNSET

from bridge_worker.wire import schema
from bridge_worker.wire.dispatch import Dispatcher, Method
from bridge_worker.wire.errors import BridgeError, ErrorKind, as_bridge_error
from bridge_worker.wire.framing import Frame, Oversize
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.nesting import nesting_depth
from bridge_worker.wire.reply_limit import reply_too_large
from bridge_worker.wire.schema import (
    ErrorNotificationParams,
    ErrorObject,
    ErrorReply,
    Notification,
    ResultReply,
    WireId,
    WireIdBytes,
)

_NOT_JSON = (msgspec.DecodeError, RecursionError)
"""What a decoder raises for bytes it cannot read: ``RecursionError`` for nesting deeper than its
stack allows (``--max-depth`` keeps frames well below that). Invalid UTF-8 never reaches a decoder:
:func:`_utf8_error` answers it first, because msgspec reports it differently across versions
(0.22 raised ``UnicodeDecodeError``, 0.23 ``DecodeError``) and only where it happens to look."""

_BOM = b"\xef\xbb\xbf"
_ID_STARTS = frozenset(b'"-0123456789n')
"""First bytes of an ``id`` JSON-RPC allows: a string, a number or null (not true/false/{}/[])."""
_SURROGATE_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(?P<lone>\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
"""An escaped backslash, an escaped surrogate pair, or a lone escaped surrogate (in that order,
so ``\\\\ud800`` is a backslash and text, never an escape)."""
_STRING_OR_NAN = re.compile(rb'"(?:[^"\\]|\\.)*"|(?P<nan>-?\b(?:NaN|Infinity)\b)', re.DOTALL)
_NAN_HINT = (
    "NaN and Infinity are not JSON (RFC 8259); tell a failed evaluation as "
    '"state":"fail" instead of a value'
)


class _IdProbe(msgspec.Struct):
    id: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_decode_id = msgspec.json.Decoder(_IdProbe).decode
_encode = schema.encoder.encode
_decode_envelope = schema.envelope_decoder.decode
_decode_batch = schema.batch_decoder.decode


class Endpoint:
    """Answers frames. ``closing`` turns true once a method that ends the session has answered."""

    def __init__(self, dispatcher: Dispatcher[Any], limits: Limits, strict: bool = False) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.strict = strict
        self.closing = False
        self.should_stop: Callable[[], bool] = lambda: False
        """Asked between the items of a batch: once true, the items not started get no work."""
        self._log = structlog.get_logger("bridge_worker.wire.rpc")
        self.decode_request = schema.request_decoder(
            {name: method.params_type for name, method in dispatcher.methods.items()}
        ).decode
        """A whole request decoded in one pass (:func:`schema.request_decoder`)."""

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
            # The frames nearly every parent sends are decoded in one pass and checked as the
            # careful path (_handle_frame) checks them; whatever this refuses takes that path,
            # which says what is wrong. JSON that decodes is balanced: a frame nests at most
            # half its length deep.
            max_depth = self.limits.max_depth
            request = None
            if frame.isascii() and (  # so valid UTF-8 (a batch or a BOM: the careful path)
                len(frame) <= 2 * max_depth or nesting_depth(frame, max_depth) <= max_depth
            ):
                try:
                    request = self.decode_request(frame)
                except (msgspec.ValidationError, *_NOT_JSON):
                    pass
            if (
                request is not None
                and (method := self.dispatcher.methods.get(request.method_name)) is not None
                and (request.id is UNSET or bytes(request.id)[0] in _ID_STARTS)  # _is_id
                and not (self.strict and request.jsonrpc is UNSET)
            ):
                reply = self._answer(method, request.params, request.id, out)
            else:
                reply = self._handle_frame(frame, out)
        except Exception as exc:  # a bug in this module itself must not end the worker either
            self._log.error("internal_error", exc_info=exc)
            reply = _error_reply(None, as_bridge_error(exc))
        if reply is not None:
            out.append(reply)
        return out

    def _handle_frame(self, frame: bytes, out: list[bytes]) -> bytes | None:
        max_depth = self.limits.max_depth
        if frame.startswith(_BOM):  # RFC 8259 section 8.1: a parser may ignore it
            frame = frame[len(_BOM) :]
        bad_utf8 = _utf8_error(frame)
        if bad_utf8 is not None:
            return _error_reply(_salvage_id(_lossy(frame)), bad_utf8)
        depth = nesting_depth(frame, max_depth)
        if depth > max_depth:
            error = BridgeError(
                ErrorKind.LIMIT_EXCEEDED,
                f"frame nested {depth} levels deep; this worker allows at most {max_depth} "
                "(--max-depth)",
                limit="max_depth",
                value=depth,
                max=max_depth,
            )
            return _error_reply(_salvage_id(frame), error)
        if frame.lstrip()[:1] == b"[":
            return self._handle_batch(frame, out)
        return self._handle_one(frame, out)

    def _handle_batch(self, frame: bytes, out: list[bytes]) -> bytes | None:
        try:
            items = _decode_batch(frame)
        except _NOT_JSON as exc:
            return _parse_error_reply(frame, exc)
        if not items:
            return _error_reply(None, BridgeError(ErrorKind.INVALID_REQUEST, "empty batch"))
        try:
            self.limits.check("max_batch", "requests in the batch", len(items))
        except BridgeError as error:
            return _refuse_batch(items, error)
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
                return _parse_error_reply(bytes(raw), not_json)
            closed = {"allowed": ["2.0"]} if str(exc).endswith("`$.jsonrpc`") else {}
            error = BridgeError(ErrorKind.INVALID_REQUEST, f"not a valid request: {exc}", **closed)
            return _error_reply(_salvage_id(raw), error)
        except _NOT_JSON as exc:
            return _parse_error_reply(bytes(raw), exc)
        request_id = envelope.id
        if not isinstance(request_id, msgspec.UnsetType) and not _is_id(request_id):
            error = BridgeError(
                ErrorKind.INVALID_REQUEST,
                "not a valid request: `id` must be a string, a number or null - at `$.id`",
            )
            return _error_reply(None, error)
        try:
            if self.strict and isinstance(envelope.jsonrpc, msgspec.UnsetType):
                raise BridgeError(
                    ErrorKind.INVALID_REQUEST,
                    'not a valid request: "jsonrpc":"2.0" is required (--jsonrpc strict)',
                )
            method = self.dispatcher.lookup(envelope.method)
            params = self.dispatcher.decode_params(method, _params_bytes(envelope.params))
        except Exception as exc:
            return self._failed(exc, envelope.method, request_id, out)
        return self._answer(method, params, request_id, out)

    def _answer(
        self,
        method: Method,
        params: Any,
        request_id: WireIdBytes | msgspec.UnsetType,
        out: list[bytes],
    ) -> bytes | None:
        """Run a request whose params are decoded: its reply (None for a notification)."""
        try:
            result = self.dispatcher.run(method, params)
        except Exception as exc:  # every failure becomes a reply; none may end the worker
            return self._failed(exc, method.name, request_id, out)
        if method.ends_session:
            self.closing = True
        if request_id is UNSET:
            return None
        try:
            reply = _encode(ResultReply(id=request_id, result=result))
        except MemoryError as exc:
            del result
            return self._internal_error(request_id, method.name, exc)
        if len(reply) > self.limits.max_reply_bytes:
            size = len(reply)
            del reply
            error = reply_too_large(method.name, result, size, self.limits.max_reply_bytes)
            return _error_reply(request_id, error)
        return reply

    def _failed(
        self,
        exc: Exception,
        method: str,
        request_id: WireIdBytes | msgspec.UnsetType,
        out: list[bytes],
    ) -> bytes | None:
        """A request that failed: its error reply, or for a notification an error
        notification in ``out`` (only logged with ``--jsonrpc strict``)."""
        error = as_bridge_error(exc)
        if error.kind is ErrorKind.INTERNAL_ERROR:
            self._log.error("internal_error", method=method, exc_info=exc)
        else:
            self._log.debug(
                "request_failed",
                method=method,
                id=request_id,
                kind=error.kind.kind,
                message=error.message,
            )
        if isinstance(request_id, msgspec.UnsetType):
            if self.strict:
                self._log.warning(
                    "notification_failed",
                    method=method,
                    kind=error.kind.kind,
                    field=error.data.get("field"),
                )
            else:
                out.append(_error_notification(method, error))
            return None
        return _error_reply(request_id, error)

    def _internal_error(self, request_id: WireId, method: str | None, exc: BaseException) -> bytes:
        self._log.error("internal_error", method=method, exc_info=exc)
        return _error_reply(request_id, as_bridge_error(exc))

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
            if self.strict:
                self._log.warning(
                    "notification_failed", method=envelope.method, kind=error.kind.kind, field=None
                )
            else:
                out.append(_error_notification(envelope.method, error))
            return None
        return _error_reply(envelope.id, error)


def _params_bytes(params: msgspec.Raw | msgspec.UnsetType) -> bytes | None:
    """The params object to decode, or None for none. JSON-RPC params are structured: an object
    (by name, what every method here takes) or an array (by position: only ``[]``, "no
    arguments", is accepted, as ``{}``). Anything else is not a valid request."""
    if isinstance(params, msgspec.UnsetType):
        return None
    raw = bytes(params)
    first = raw[:1]
    if first == b"{":
        return raw
    if first == b"[":
        if raw[1:].strip() == b"]":
            return None
        raise BridgeError(
            ErrorKind.INVALID_PARAMS,
            'params are by name: give an object such as {"study":"s"}, not an array - at '
            "`$.params`",
            field="$.params",
        )
    raise BridgeError(
        ErrorKind.INVALID_REQUEST,
        "not a valid request: `params` must be an object (or an array), got "
        f"{_json_type(first)} - at `$.params`",
    )


def _json_type(first: bytes) -> str:
    return {b'"': "a string", b"n": "null", b"t": "a boolean", b"f": "a boolean"}.get(
        first, "a number"
    )


def _refuse_batch(items: list[msgspec.Raw], error: BridgeError) -> bytes:
    """A batch over ``--max-batch`` is answered as a batch: one error per request id, so a client
    waiting on its ids gets every answer (one error with id null only if no entry has an id)."""
    ids = [_probe_id(item) for item in items]
    replies = [_error_reply(i, error) for i in ids if not isinstance(i, msgspec.UnsetType)]
    if not replies:
        return _error_reply(None, error)
    return b"[" + b",".join(replies) + b"]"


def _error_object(error: BridgeError) -> ErrorObject:
    return ErrorObject(
        code=error.kind.code, message=error.message, data={"kind": error.kind.kind, **error.data}
    )


def _error_reply(request_id: WireId, error: BridgeError) -> bytes:
    return _encode(ErrorReply(id=request_id, error=_error_object(error)))


def _error_notification(method: str | None, error: BridgeError) -> bytes:
    params = ErrorNotificationParams(method=method, error=_error_object(error))
    return _encode(Notification(method="error", params=params))


def _utf8_error(frame: bytes) -> BridgeError | None:
    """A frame that is not UTF-8 is not JSON (RFC 8259 section 8.1), wherever the bad bytes sit:
    in a member the schema would reject anyway, or inside params the envelope only skips over.
    ASCII frames, nearly all of them, are proven valid by one C-level scan."""
    if frame.isascii():
        return None
    try:
        frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BridgeError(
            ErrorKind.PARSE_ERROR, f"invalid JSON: the frame is not UTF-8 (byte {exc.start})"
        )
    return None


def _lossy(frame: bytes) -> bytes:
    """The frame with invalid UTF-8 replaced, only to recover its id for the error reply."""
    return frame.decode("utf-8", "replace").encode()


def _parse_error_reply(frame: bytes, exc: BaseException) -> bytes:
    """``parse_error``, saying what is wrong in the cases people meet (a NaN, a lone surrogate as
    ``JSON.stringify`` writes it), with the request's id when the rest of the frame is JSON."""
    lone = None
    repaired = frame
    if b"\\u" in frame:
        lone, repaired = _without_lone_surrogates(frame)
    if lone is not None:
        message = (
            f"invalid JSON: the string escape `{lone}` is a lone surrogate (half of a UTF-16 "
            "pair), which is not Unicode text; send the text as UTF-8 or a complete pair"
        )
    elif (nulled := _nan_as_null(frame)) != frame:
        message = f"invalid JSON: {_NAN_HINT}"
        repaired = nulled
    else:
        message = f"invalid JSON: {exc}"
    return _error_reply(_salvage_id(repaired), BridgeError(ErrorKind.PARSE_ERROR, message))


def _without_lone_surrogates(frame: bytes) -> tuple[str | None, bytes]:
    """The first lone surrogate escape (as text) and the frame with each replaced by U+FFFD."""
    first: list[str] = []

    def replace(match: re.Match[bytes]) -> bytes:
        if match.group("lone") is None:
            return match.group(0)
        if not first:
            first.append(match.group("lone").decode())
        return b"\\ufffd"

    repaired = _SURROGATE_ESCAPES.sub(replace, frame)
    return (first[0] if first else None), repaired


def _nan_as_null(frame: bytes) -> bytes:
    """The frame with each NaN/Infinity literal outside strings replaced by null."""
    return _STRING_OR_NAN.sub(
        lambda m: b"null" if m.group("nan") is not None else m.group(0), frame
    )


def _is_id(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw)[0] in _ID_STARTS


def _probe_id(raw: bytes | msgspec.Raw) -> WireId | msgspec.UnsetType:
    """The request's id as sent (None if it has no usable one), or UNSET for a notification."""
    try:
        request_id = _decode_id(raw).id
    except (msgspec.ValidationError, *_NOT_JSON):
        return None
    if isinstance(request_id, msgspec.UnsetType) or _is_id(request_id):
        return request_id
    return None


def _salvage_id(raw: bytes | msgspec.Raw) -> WireId:
    """The id of a malformed request, when it has a usable one, so the parent can match the
    error to its call (JSON-RPC: null when it cannot be determined)."""
    request_id = _probe_id(raw)
    return None if isinstance(request_id, msgspec.UnsetType) else request_id
