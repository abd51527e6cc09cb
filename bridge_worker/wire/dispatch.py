"""Method name -> handler, with each handler's params decoded into its typed struct first.

A handler is a plain function ``def ask(registry: StudyRegistry, params: AskParams) -> AskResult``
marked with :func:`rpc_method`; its signature *is* its contract. The table is built once from the
type hints, so adding a method is writing one function. The dispatcher knows nothing of frames or
JSON-RPC envelopes; it takes a method name and raw params bytes and returns a result struct or
raises :class:`~bridge_worker.wire.errors.BridgeError`.

It knows nothing of studies either: it is generic over the handlers' first argument (the worker
passes its study registry), of which it needs only what :class:`DispatchContext` names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, get_type_hints

import msgspec

from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.param_errors import params_error

Handler = Callable[[Any, Any], Any]
F = TypeVar("F", bound=Callable[..., Any])


class DispatchContext(Protocol):
    """What the dispatcher needs of the handlers' first argument."""

    @property
    def limits(self) -> Limits:
        """The bounds a params error names (``limit_exceeded`` instead of ``invalid_params``)."""
        ...

    def replaced(self, study: str) -> bool:
        """Whether the study cached under this name was deleted or replaced meanwhile."""
        ...


C = TypeVar("C", bound=DispatchContext)

_EMPTY_PARAMS = b"{}"


def rpc_method(
    name: str, *, ends_session: bool = False, reads_only: bool = False
) -> Callable[[F], F]:
    """Mark a function as the handler of method ``name``.

    ``ends_session``: the worker exits after this method's reply is written (``shutdown``).
    ``reads_only``: the method writes nothing, so it may run again when its study was replaced
    under it (see :meth:`Dispatcher.call`).
    """

    def mark(fn: F) -> F:
        fn.__rpc_method__ = (name, ends_session, reads_only)  # type: ignore[attr-defined]
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
    reads_only: bool = False


def build_methods(handlers: Iterable[Callable[..., Any]]) -> dict[str, Method]:
    table: dict[str, Method] = {}
    for fn in handlers:
        name, ends_session, reads_only = fn.__rpc_method__  # type: ignore[attr-defined]
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
            reads_only=reads_only,
        )
    return table


class Dispatcher(Generic[C]):
    def __init__(self, registry: C, methods: dict[str, Method]) -> None:
        self.registry = registry
        """The handlers' first argument (the worker's study registry)."""
        self.methods = methods
        self.before_call: Callable[[Method, Any], None] | None = None
        """Told each call's method and decoded params just before its handler runs, unless the
        call is quick (the I/O loop writes the replies it holds before a call that may run
        long)."""
        self.quick_methods: frozenset[str] = frozenset()
        """Methods whose calls for one trial (``n`` 1, or no ``n``) are quick: ``before_call``
        is not told of them (a call per frame of a burst saved)."""

    def lookup(self, name: str) -> Method:
        method = self.methods.get(name)
        if method is None:
            raise BridgeError(
                ErrorKind.METHOD_NOT_FOUND,
                f"unknown method {name!r}",
                method=name,
                allowed=sorted(self.methods),
            )
        return method

    def call(self, method: Method, raw_params: bytes | None) -> Any:
        """Decode ``raw_params`` into the method's params struct, then run its handler."""
        return self.run(method, self.decode_params(method, raw_params))

    def decode_params(self, method: Method, raw_params: bytes | None) -> Any:
        """The method's params struct, or the error that says which field is wrong."""
        try:
            return method.decoder.decode(raw_params or _EMPTY_PARAMS)
        except msgspec.ValidationError as exc:
            raise params_error(
                str(exc), method.params_type, raw_params, self.registry.limits
            ) from None
        except RecursionError:
            raise BridgeError(
                ErrorKind.LIMIT_EXCEEDED, "params nested too deeply", limit="max_depth"
            ) from None

    def run(self, method: Method, params: Any) -> Any:
        """Run the method's handler on params already decoded."""
        before_call = self.before_call
        if before_call is not None and (
            method.name not in self.quick_methods or getattr(params, "n", 1) != 1
        ):
            before_call(method, params)
        try:
            return method.handler(self.registry, params)
        except KeyError:
            # The storage no longer knows a study id the handler was using: the study was
            # deleted or replaced (an import's swap, another worker) while this request ran.
            study = getattr(params, "study", None)
            if not isinstance(study, str) or not self.registry.replaced(study):
                raise
            if method.reads_only:  # read again: the name means the new study now
                return method.handler(self.registry, params)
            raise BridgeError(
                ErrorKind.STUDY_NOT_FOUND,
                f"study {study!r} was deleted or replaced while this request ran",
                study=study,
                replaced=True,
            ) from None
