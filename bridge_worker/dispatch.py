"""Method name -> handler, with each handler's params decoded into its typed struct first.

A handler is a plain function ``def ask(registry: StudyRegistry, params: AskParams) -> AskResult``
marked with :func:`rpc_method`; its signature *is* its contract. The table is built once from the
type hints, so adding a method is writing one function. The dispatcher knows nothing of frames or
JSON-RPC envelopes; it takes a method name and raw params bytes and returns a result struct or
raises :class:`~bridge_worker.errors.BridgeError`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

import msgspec

from bridge_worker.errors import BridgeError, ErrorKind
from bridge_worker.limits import HARD_BOUNDS, Limits
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema_paths import (
    allowed_fields,
    allowed_tags,
    allowed_values,
    decode_loosely,
)

Handler = Callable[[StudyRegistry, Any], Any]
F = TypeVar("F", bound=Callable[..., Any])

_EMPTY_PARAMS = b"{}"
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_OVER_BOUND = re.compile(r"^Expected `(?P<type>int|str)`(?: of length)? <= (?P<bound>\d+)")
_BOUND_LIMITS = {
    ("int", HARD_BOUNDS["max_ask"]): ("max_ask", "trials asked at once (n)"),
    ("str", HARD_BOUNDS["max_name_length"]): ("max_name_length", "length of a name"),
}
"""Schema bounds that are also the ceiling of an operator limit: a value over them is over the
operator's limit too, and is answered as such (``limit_exceeded`` naming the worker's maximum)."""
_NULL_FOR_FLOAT = "Expected `float`, got `null`"


def rpc_method(name: str, *, ends_session: bool = False) -> Callable[[F], F]:
    """Mark a function as the handler of method ``name``.

    ``ends_session``: the worker exits after this method's reply is written (``shutdown``).
    """

    def mark(fn: F) -> F:
        fn.__rpc_method__ = (name, ends_session)  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Handler
    params_type: type[msgspec.Struct]
    result_type: type[msgspec.Struct]
    decoder: msgspec.json.Decoder[Any]
    ends_session: bool


def build_methods(handlers: Iterable[Callable[..., Any]]) -> dict[str, Method]:
    table: dict[str, Method] = {}
    for fn in handlers:
        name, ends_session = fn.__rpc_method__  # type: ignore[attr-defined]
        hints = get_type_hints(fn)
        params_type = hints["params"]
        if name in table:
            raise ValueError(f"method {name!r} registered twice")
        table[name] = Method(
            name=name,
            handler=fn,
            params_type=params_type,
            result_type=hints["return"],
            decoder=msgspec.json.Decoder(params_type),
            ends_session=ends_session,
        )
    return table


class Dispatcher:
    def __init__(self, registry: StudyRegistry, methods: dict[str, Method]) -> None:
        self.registry = registry
        self.methods = methods

    def lookup(self, name: str) -> Method:
        method = self.methods.get(name)
        if method is None:
            raise BridgeError(
                ErrorKind.METHOD_NOT_FOUND, f"unknown method {name!r}", method=name,
                allowed=sorted(self.methods),
            )
        return method

    def call(self, method: Method, raw_params: bytes | None) -> Any:
        """Decode ``raw_params`` into the method's params struct, then run its handler."""
        try:
            params = method.decoder.decode(raw_params or _EMPTY_PARAMS)
        except msgspec.ValidationError as exc:
            raise params_error(
                str(exc), method.params_type, raw_params, self.registry.limits
            ) from None
        except RecursionError:
            raise BridgeError(
                ErrorKind.LIMIT_EXCEEDED, "params nested too deeply", limit="max_depth"
            ) from None
        return method.handler(self.registry, params)


def params_error(
    message: str,
    params_type: type[msgspec.Struct],
    raw_params: bytes | None = None,
    limits: Limits | None = None,
) -> BridgeError:
    """Turn msgspec's ``... - at `$.n``` into ``invalid_params`` naming ``$.params.n``.

    For an unknown field the error also lists the fields allowed at that place (for a sampler,
    the options of the sampler its ``type`` names), for an unknown ``type`` the types there, and
    for a value outside a closed set (``direction``, ``state``, ...) the values, so a typo is
    answered with the right spelling. A value over a bound that is also an operator limit is
    ``limit_exceeded`` naming this worker's maximum; a ``null`` where a float belongs says that
    JSON has no NaN.
    """
    match = _AT_PATH.search(message)
    path = match.group("path") if match else ""
    text = message[: match.start()] if match else message
    over = _OVER_BOUND.match(text)
    if over and limits is not None:
        limit = _BOUND_LIMITS.get((over.group("type"), int(over.group("bound"))))
        if limit is not None:
            return _limit_error(limits, *limit, _value_at(raw_params, path))
    if text.startswith(_NULL_FOR_FLOAT):
        text += (
            " (JSON has no NaN: a NaN encoded as null is not a number; tell a failed evaluation "
            'as "state":"fail")'
        )
    field = f"$.params{path}"
    data: dict[str, Any] = {"field": field}
    unknown = _UNKNOWN_FIELD.match(text)
    allowed = None
    with contextlib.suppress(Exception):  # a hint: never let it turn into an internal_error
        if unknown:
            name = unknown.group("name")
            data["field"] = f"{field}.{name}"
            allowed = allowed_fields(params_type, path, decode_loosely(raw_params), name)
        elif text.startswith("Invalid value") and path.endswith(".type"):
            allowed = allowed_tags(params_type, path, decode_loosely(raw_params))
        elif text.startswith("Invalid enum value"):
            allowed = allowed_values(params_type, path, decode_loosely(raw_params))
    if allowed is not None:
        data["allowed"] = allowed
    return BridgeError(ErrorKind.INVALID_PARAMS, f"{text} - at `{field}`", **data)


def _limit_error(limits: Limits, limit: str, what: str, value: int | None) -> BridgeError:
    maximum: int = getattr(limits, limit)
    flag = f"--{limit.replace('_', '-')}"
    if value is not None:
        try:
            limits.check(limit, what, value)
        except BridgeError as error:
            return error
    return BridgeError(
        ErrorKind.LIMIT_EXCEEDED, f"{what} over this worker's maximum of {maximum} ({flag})",
        limit=limit, max=maximum,
    )


def _value_at(raw_params: bytes | None, path: str) -> int | None:
    """The number (or a string's length) at a simple path like ``.n`` or ``.study``."""
    document = decode_loosely(raw_params)
    for name in path.split(".")[1:]:
        document = document.get(name) if isinstance(document, dict) else None
    if isinstance(document, str):
        return len(document)
    return document if isinstance(document, int) and not isinstance(document, bool) else None
