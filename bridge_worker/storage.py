"""The operator's ``--storage`` URL to an Optuna storage. Frames never name a storage.

``memory`` (the default) is embedded; ``sqlite:///``, ``postgresql+psycopg2://``, ``mysql+...://``
and any other SQLAlchemy URL give Optuna's RDB storage; ``journal:///path.log`` gives Optuna's
journal file storage and ``redis://host:port/db`` the journal on Redis; ``grpc://host:port`` is
Optuna's gRPC storage proxy (``optuna-bridge proxy``, :mod:`bridge_worker.proxy`), which lets many
workers share one database without a connection each.

A durable storage is opened lazily by :class:`StorageHandle`: a database that is down when the
worker starts (or goes down later) makes replies ``storage_error`` instead of killing the worker,
and the next frame after it comes back works, so a supervisor never sees a restart loop.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.errors import BridgeError, ErrorKind

HEARTBEAT_ATTR = "optuna_bridge:heartbeat"
"""Trial system attr holding the last heartbeat (UNIX time) on journal storages."""

CONNECT_TIMEOUT_S = 10

GRPC_CONNECT_TIMEOUT_S = 2
"""How long opening a ``grpc://`` storage waits for the proxy (a refused connection is retried
by gRPC until then, so this is what a frame costs while the proxy is down)."""

_JOURNAL_SCHEMES = {"journal": "journal", "redis": "redis", "rediss": "redis"}

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """Everything the operator chose about storage on the command line."""

    url: str = "memory"
    heartbeat: int | None = None
    """Seconds between heartbeats of running trials; enables failing stale trials."""
    grace_period: int | None = None
    """Seconds without a heartbeat before a running trial is failed (default: 2 heartbeats)."""
    retry_failed: int | None = None
    """Ask a stale-failed trial's parameters again, at most this many times."""

    @property
    def kind(self) -> str:
        return storage_kind(self.url)


def storage_kind(url: str) -> str:
    """What the ``ready`` frame and logs say about a storage: its kind, never a URL or password.

    ``postgresql+psycopg2://user:secret@host/db`` is ``postgresql``.
    """
    if url == "memory":
        return "memory"
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(f"not a storage URL: {url!r} (expected memory, sqlite:///path.db, ...)")
    return _JOURNAL_SCHEMES.get(scheme, scheme.split("+", 1)[0])


def check_options(options: StorageOptions) -> None:
    """Reject, at start-up, option combinations that cannot work (a ValueError for argparse)."""
    kind = storage_kind(options.url)
    if kind == "journal" and not urlsplit(options.url).path:
        raise ValueError("journal storage needs a path: journal:///path/to/study.log")
    if kind == "grpc":
        grpc_address(options.url)
    if options.heartbeat is None:
        if options.grace_period is not None or options.retry_failed is not None:
            raise ValueError("--grace-period and --retry-failed need --heartbeat")
        return
    if kind == "memory":
        raise ValueError("--heartbeat needs a durable storage (RDB or journal), not memory")
    if kind == "grpc":
        raise ValueError("--heartbeat is not available through the gRPC proxy (Optuna's proxy has "
                         "no heartbeats); use trial leases (ask with lease_s) instead")
    if options.heartbeat < 1:
        raise ValueError("--heartbeat must be at least 1 second")


def open_storage(options: StorageOptions) -> BaseStorage:
    """Open the storage now (connects to a database; may raise)."""
    kind = storage_kind(options.url)
    callback = _stale_trial_callback(options)
    if options.heartbeat is not None:
        _quiet_heartbeat_warnings()
    if kind == "memory":
        return InMemoryStorage()
    if kind == "grpc":
        return _grpc_proxy(options.url)
    if kind in ("journal", "redis"):
        return JournalHeartbeatStorage(
            _journal_backend(options.url),
            heartbeat_interval=options.heartbeat,
            grace_period=options.grace_period,
            stale_trial_callback=callback,
        )
    engine_kwargs: dict[str, Any] = {
        # A database restarted under a running worker leaves dead pooled connections behind;
        # pre-ping replaces them instead of failing the next frame.
        "pool_pre_ping": True,
    }
    if kind == "postgresql":
        # An unreachable host must cost a frame seconds, not the TCP timeout of minutes.
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return optuna.storages.RDBStorage(
        options.url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=options.heartbeat,
        grace_period=options.grace_period,
        heartbeat_stale_trial_callback=callback,
    )


def grpc_address(url: str) -> tuple[str, int]:
    """``grpc://host:port`` as (host, port); a ValueError (for argparse) otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"a gRPC proxy storage is grpc://host:port, got {url!r}")
    return parts.hostname, port


def _grpc_proxy(url: str) -> BaseStorage:
    """Optuna's ``GrpcStorageProxy``, once the proxy answers (a proxy that is down is a
    ``storage_error`` after GRPC_CONNECT_TIMEOUT_S, retried at the next frame)."""
    try:
        import grpc  # noqa: F401  (Optuna imports it only when the proxy is first used)
    except ImportError as exc:
        raise BridgeError(
            ErrorKind.MISSING_DEPENDENCY,
            "the grpc:// storage needs the Python package 'grpcio', which is not installed: "
            "pip install 'optuna-bridge[grpc]'",
            package="grpcio", extra="grpc",
        ) from exc
    from optuna.storages import GrpcStorageProxy

    host, port = grpc_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = GrpcStorageProxy(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=GRPC_CONNECT_TIMEOUT_S)
    except ConnectionError:
        storage.close()
        raise ConnectionError(f"no gRPC storage proxy answers at {host}:{port}") from None
    return storage


def _journal_backend(url: str) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    parts = urlsplit(url)
    if parts.scheme == "journal":
        return JournalFileBackend(parts.path)
    return JournalRedisBackend(url)


def _stale_trial_callback(options: StorageOptions) -> StaleTrialCallback | None:
    if options.retry_failed is None:
        return None
    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=options.retry_failed)


def _quiet_heartbeat_warnings() -> None:
    """Heartbeats in ask-and-tell mode are what this worker is for: Optuna's warnings that they
    are experimental and "supposed to be used with Study.optimize" would repeat on every ask."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                            message=".*heartbeat.*")
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


class JournalHeartbeatStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus the heartbeat Optuna 5 only has for RDB storages.

    A heartbeat is a trial system attr (one journal record per running trial per interval), so
    every worker sharing the journal sees it; stale trials are found and failed exactly as
    Optuna's ``fail_stale_trials`` does for RDB storages.
    """

    def __init__(
        self,
        backend: Any,
        *,
        heartbeat_interval: int | None,
        grace_period: int | None,
        stale_trial_callback: StaleTrialCallback | None,
    ) -> None:
        super().__init__(backend)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period or (2 * heartbeat_interval if heartbeat_interval else 0)
        self._stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        deadline = time.time() - self._grace_period
        return [
            trial._trial_id
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if trial.system_attrs.get(HEARTBEAT_ATTR, deadline) < deadline
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleTrialCallback | None:
        return self._stale_trial_callback


def _open_racing_peers(options: StorageOptions, attempts: int = 5) -> BaseStorage:
    """Open the storage; workers that start together on an empty database race to create
    Optuna's tables, and the losers see an IntegrityError: the tables exist then, so try again."""
    for attempt in range(1, attempts + 1):
        try:
            return open_storage(options)
        except Exception as exc:
            if attempt == attempts or type(exc).__name__ != "IntegrityError":
                raise
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


class StorageHandle:
    """The worker's storage, opened on first use and re-tried after a failure to open."""

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        self.kind = options.kind
        self._storage: BaseStorage | None = None
        self._lock = threading.Lock()

    def get(self) -> BaseStorage:
        storage = self._storage
        if storage is not None:
            return storage
        with self._lock:
            if self._storage is None:
                try:
                    self._storage = _open_racing_peers(self.options)
                except BridgeError:
                    raise
                except Exception as exc:
                    raise BridgeError(
                        ErrorKind.STORAGE_ERROR,
                        f"cannot open the {self.kind} storage: {type(exc).__name__}: {exc}",
                        error=type(exc).__name__,
                    ) from exc
            return self._storage

    @property
    def heartbeat(self) -> BaseHeartbeat | None:
        """The storage as a heartbeat target, when the operator enabled heartbeats."""
        if self.options.heartbeat is None:
            return None
        storage = self.get()
        return storage if isinstance(storage, BaseHeartbeat) else None
