"""The operator's ``--storage`` URL to an Optuna storage. Frames never name a storage.

``memory`` (the default) is embedded (:mod:`~bridge_worker.storage.memory`); ``sqlite:///``,
``postgresql+psycopg2://``, ``mysql+...://`` and any other SQLAlchemy URL give Optuna's RDB
storage (:mod:`~bridge_worker.storage.rdb`); ``journal:///path.log`` gives Optuna's journal file
storage (:mod:`~bridge_worker.storage.journal`) and ``redis://host:port/db`` the journal on Redis
(:mod:`~bridge_worker.storage.redis`); ``grpc://host:port`` is Optuna's gRPC storage proxy
(:mod:`~bridge_worker.storage.grpc`). The backend is chosen from the URL by the table in
:mod:`bridge_worker.storage.backends`; this module only opens it.

A durable storage is opened lazily by :class:`StorageHandle`: a database that is down when the
worker starts (or goes down later) makes replies ``storage_error`` instead of killing the worker,
and the next frame after it comes back works, so a supervisor never sees a restart loop.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial

from bridge_worker.storage.backend import remember
from bridge_worker.storage.options import StorageOptions
from bridge_worker.wire.errors import BridgeError, ErrorKind

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def open_storage(options: StorageOptions) -> BaseStorage:
    """Open the storage now through its backend (connects to a database; may raise)."""
    backend = options.backend
    if options.heartbeat is not None:
        _quiet_heartbeat_warnings()
    storage = backend.open(options, _stale_trial_callback(options))
    remember(storage, backend)
    return storage


def _stale_trial_callback(options: StorageOptions) -> StaleTrialCallback | None:
    if options.retry_failed is None:
        return None
    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=options.retry_failed)


def _quiet_heartbeat_warnings() -> None:
    """Heartbeats in ask-and-tell mode are what this worker is for: Optuna's warnings that they
    are experimental and "supposed to be used with Study.optimize" would repeat on every ask."""
    warnings.filterwarnings(
        "ignore", category=optuna.exceptions.ExperimentalWarning, message=".*heartbeat.*"
    )
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def _open_racing_peers(options: StorageOptions, attempts: int = 5) -> BaseStorage:
    """Open the storage; workers that start together may race each other (to create Optuna's
    tables on an empty database): where the backend says a failure is such a race, try again."""
    for attempt in range(1, attempts + 1):
        try:
            return open_storage(options)
        except Exception as exc:
            if attempt == attempts or not options.backend.retry_open(exc):
                raise
            time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


class StorageHandle:
    """The worker's storage, opened on first use and re-tried after a failure to open."""

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        self.backend = options.backend
        self.kind = options.kind
        self._storage: BaseStorage | None = None
        self._lock = threading.Lock()
        self._commit: Callable[[], None] | None = None
        self.group_commits = self.backend.group_commits(options.url)
        """Whether writes are synced once per group by :meth:`commit`
        (:mod:`bridge_worker.storage.group_commit`) rather than one by one."""

    def commit(self) -> None:
        """Make every write so far durable (a no-op where each write already is)."""
        commit = self._commit
        if commit is not None:
            commit()

    def get(self) -> BaseStorage:
        storage = self._storage
        if storage is not None:
            return storage
        with self._lock:
            if self._storage is None:
                try:
                    storage = _open_racing_peers(self.options)
                    if self.group_commits:
                        self._commit = self.backend.group_committer(storage)
                    self._storage = storage
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
