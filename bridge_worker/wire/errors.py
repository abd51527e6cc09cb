"""The closed set of error kinds the worker can reply with, defined once.

A parent matches on ``data.kind`` (a stable string) or on ``code`` (a stable integer); the message
is for people. Handlers raise :class:`BridgeError`; exactly one place (``rpc``) turns it into a
reply, so no handler ever formats an error frame itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any


class ErrorKind(enum.Enum):
    """Every error a reply can carry: ``kind`` string and JSON-RPC ``code``."""

    PARSE_ERROR = ("parse_error", -32700)
    INVALID_REQUEST = ("invalid_request", -32600)
    METHOD_NOT_FOUND = ("method_not_found", -32601)
    INVALID_PARAMS = ("invalid_params", -32602)
    INTERNAL_ERROR = ("internal_error", -32603)
    STUDY_NOT_FOUND = ("study_not_found", -32001)
    STUDY_EXISTS = ("study_exists", -32002)
    TRIAL_NOT_FOUND = ("trial_not_found", -32003)
    TRIAL_FINISHED = ("trial_finished", -32004)
    NO_COMPLETED_TRIALS = ("no_completed_trials", -32005)
    FRAME_TOO_LARGE = ("frame_too_large", -32006)
    STORAGE_ERROR = ("storage_error", -32007)
    SNAPSHOT_INVALID = ("snapshot_invalid", -32008)
    LIMIT_EXCEEDED = ("limit_exceeded", -32009)
    MISSING_DEPENDENCY = ("missing_dependency", -32010)
    WORKER_STOPPING = ("worker_stopping", -32011)
    STUDY_STOPPED = ("study_stopped", -32012)
    NOT_CONFIGURED = ("not_configured", -32013)

    def __init__(self, kind: str, code: int) -> None:
        self.kind = kind
        self.code = code


class BridgeError(Exception):
    """An error meant for the parent: its kind, a human message and extra structured data.

    ``data`` is merged into the reply's ``error.data`` next to ``kind`` (e.g. ``field`` for
    ``invalid_params``, ``study`` for ``study_not_found``).
    """

    def __init__(self, kind: ErrorKind, message: str, **data: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.data = data

    def __repr__(self) -> str:
        return f"BridgeError({self.kind.kind}, {self.message!r}, {self.data!r})"


def invalid_params(field: str, message: str, **data: Any) -> BridgeError:
    """An ``invalid_params`` error that names the offending field as a JSONPath (``$.params.n``)."""
    return BridgeError(ErrorKind.INVALID_PARAMS, f"{message} - at `{field}`", field=field, **data)


def study_not_found(name: str) -> BridgeError:
    return BridgeError(ErrorKind.STUDY_NOT_FOUND, f"no study named {name!r}", study=name)


def trial_not_found(study: str, number: int) -> BridgeError:
    return BridgeError(
        ErrorKind.TRIAL_NOT_FOUND,
        f"study {study!r} has no trial number {number}",
        study=study,
        number=number,
    )


def trial_never_asked(study: str, number: int) -> BridgeError:
    """A trial that exists (enqueued) but was never handed out: nothing may be told of it."""
    return BridgeError(
        ErrorKind.TRIAL_NOT_FOUND,
        f"trial {number} of study {study!r} is enqueued but was never asked",
        study=study,
        number=number,
    )


def trial_finished(
    study: str,
    number: int,
    state: str,
    values: list[float] | None = None,
    lease_end: str | None = None,
) -> BridgeError:
    """``state`` and ``values``: the trial's outcome as stored (the state as the wire names it,
    ``complete``, ``pruned``, ``fail``), so a parent whose request lost the race to finish the
    trial learns what won; ``lease_end``: when a trial failed because its lease ran out, that
    moment (ISO 8601), so the parent learns why a trial it still holds is gone."""
    words = {"fail": "failed"}.get(state, state)
    if lease_end is not None:
        words += f" (its lease ended at {lease_end})"
    return BridgeError(
        ErrorKind.TRIAL_FINISHED,
        f"trial {number} of study {study!r} is already {words}",
        study=study,
        number=number,
        state=state,
        values=values,
    )


def as_bridge_error(exc: BaseException) -> BridgeError:
    """Any exception as the error a parent should see.

    Storage failures (a database that went away, a journal file that cannot be written) become
    ``storage_error`` so a parent can tell "retry later" from "my request was wrong"; anything else
    unexpected is an ``internal_error``. Which of a library's exceptions are storage failures is
    each storage backend's to say (SQLAlchemy's and grpc's, looked up in ``sys.modules`` so the
    in-memory worker never pays for importing them).
    """
    if isinstance(exc, BridgeError):
        return exc
    if _is_storage_failure(exc):
        return BridgeError(
            ErrorKind.STORAGE_ERROR, f"storage failure: {exc}", error=type(exc).__name__
        )
    return BridgeError(ErrorKind.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")


_STORAGE_FAILURES: list[Callable[[BaseException], bool]] = []
"""Each storage backend's test for its libraries' failures (filled once, as the backends' table
is built: :func:`bridge_worker.storage.backends.register`)."""


def add_storage_failure(check: Callable[[BaseException], bool]) -> None:
    """Count exceptions for which ``check`` is true as ``storage_error``."""
    _STORAGE_FAILURES.append(check)


def _is_storage_failure(exc: BaseException) -> bool:
    # deferred: errors.py is imported by the command-line config, which must not import Optuna
    from optuna.exceptions import StorageInternalError

    if isinstance(exc, StorageInternalError | OSError):
        return True
    return any(check(exc) for check in _STORAGE_FAILURES)
