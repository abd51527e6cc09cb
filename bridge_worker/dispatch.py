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
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema_paths import allowed_fields, allowed_tags, decode_loosely

Handler = Callable[[StudyRegistry, Any], Any]
F = TypeVar("F", bound=Callable[..., Any])

_EMPTY_PARAMS = b"{}"
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")


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
            raise BridgeError(ErrorKind.METHOD_NOT_FOUND, f"unknown method {name!r}", method=name)
        return method

    def call(self, method: Method, raw_params: bytes | None) -> Any:
        """Decode ``raw_params`` into the method's params struct, then run its handler."""
        try:
            params = method.decoder.decode(raw_params or _EMPTY_PARAMS)
        except msgspec.ValidationError as exc:
            raise params_error(str(exc), method.params_type, raw_params) from None
        except RecursionError:
            raise BridgeError(
                ErrorKind.LIMIT_EXCEEDED, "params nested too deeply", limit="max_depth"
            ) from None
        return method.handler(self.registry, params)


def params_error(
    message: str, params_type: type[msgspec.Struct], raw_params: bytes | None = None
) -> BridgeError:
    """Turn msgspec's ``... - at `$.n``` into ``invalid_params`` naming ``$.params.n``.

    For an unknown field the error also lists the fields allowed at that place (for a sampler,
    the options of the sampler its ``type`` names), and for an unknown ``type`` the types there,
    so a typo is answered with the right spelling.
    """
    match = _AT_PATH.search(message)
    path = match.group("path") if match else ""
    text = message[: match.start()] if match else message
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
    if allowed is not None:
        data["allowed"] = allowed
    return BridgeError(ErrorKind.INVALID_PARAMS, f"{text} - at `{field}`", **data)
