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
import fcntl
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.storage.group_commit import GroupCommitJournalFileBackend, group_committer
from bridge_worker.storage.options import StorageOptions, grpc_address, storage_kind
from bridge_worker.wire.errors import BridgeError, ErrorKind

HEARTBEAT_ATTR = "optuna_bridge:heartbeat"
"""Trial system attr holding the last heartbeat (UNIX time) on journal storages (as written by
earlier versions, one record per trial per interval; still honoured)."""
WORKER_ATTR = "optuna_bridge:worker"
"""Trial system attr naming the worker that asked the trial (journal storages)."""
WORKER_HEARTBEAT_PREFIX = "optuna_bridge:worker_heartbeat:"
"""Study system attr ``<prefix><worker id>``: that worker's last heartbeat (UNIX time) for all of
its running trials of the study (journal storages)."""

CONNECT_TIMEOUT_S = 10

GRPC_CONNECT_TIMEOUT_S = 2
"""How long opening a ``grpc://`` storage waits for the proxy (a refused connection is retried
by gRPC until then, so this is what a frame costs while the proxy is down)."""

StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def open_storage(options: StorageOptions) -> BaseStorage:
    """Open the storage now (connects to a database; may raise)."""
    kind = storage_kind(options.url)
    callback = _stale_trial_callback(options)
    if options.heartbeat is not None:
        _quiet_heartbeat_warnings()
    if kind == "memory":
        return InMemoryStorage()
    if kind == "grpc":
        return _grpc_proxy(options)
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
    return HeartbeatRDBStorage(
        options.url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=options.heartbeat,
        grace_period=options.grace_period,
        heartbeat_stale_trial_callback=callback,
    )


def _grpc_proxy(options: StorageOptions) -> BaseStorage:
    """Optuna's gRPC storage client with the token, TLS and call deadlines the operator chose
    (:mod:`bridge_worker.storage.grpc_storage`), once the proxy answers (a proxy that is down is a
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
    from bridge_worker.storage.grpc_storage import ProxyStorage  # deferred: imports grpc, an extra

    host, port = grpc_address(options.url)
    storage = ProxyStorage(
        host=host, port=port, token=options.proxy_token, tls_ca=options.proxy_tls_ca,
        timeout=options.proxy_timeout,
    )
    try:
        storage.wait_server_ready(timeout=GRPC_CONNECT_TIMEOUT_S)
    except BaseException:
        storage.close()
        raise
    return storage


def _journal_backend(url: str) -> Any:
    # deferred: only journal storages need the backends (the Redis one imports redis)
    from optuna.storages.journal import JournalRedisBackend

    parts = urlsplit(url)
    if parts.scheme == "journal":
        return GroupCommitJournalFileBackend(parts.path, lock_obj=JournalFileFlock(parts.path))
    return JournalRedisBackend(url)


class JournalFileFlock(BaseJournalFileLock):
    """The journal file's write lock as an ``flock`` on ``<path>.flock``.

    Optuna's default lock is a symlink that a killed writer leaves behind; every other worker then
    waits 30 s before breaking it. The kernel releases an ``flock`` when its holder dies, so a
    worker killed mid-write costs nobody anything. Local file systems only (as SQLite); plain
    Optuna processes that write the same journal at the same time take the symlink lock and are
    not excluded by this one.
    """

    def __init__(self, journal_path: str) -> None:
        self._path = journal_path + ".flock"
        self._held = threading.local()

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # per open file: threads exclude each other too
        except BaseException:
            os.close(fd)
            raise
        self._held.fd = fd
        return True

    def release(self) -> None:
        fd = self._held.fd
        del self._held.fd
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


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


def _started_before(trial: FrozenTrial, deadline: float) -> bool:
    """A trial that never got a heartbeat is judged by its start: it is covered from the moment
    it was created, so a worker killed before its first heartbeat strands nothing."""
    start = trial.datetime_start
    return start is not None and start.timestamp() < deadline


class HeartbeatRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, whose stale check also fails running trials that never got a
    heartbeat once their start is older than the grace period (Optuna skips them forever), and
    whose writes to a trial are a compare-and-set on its state on every database.

    Optuna reads the trial ``FOR UPDATE``, checks it is not finished, then writes; SQLite ignores
    ``FOR UPDATE``, so two workers finishing one trial at once both passed the check and the later
    write replaced the earlier. Every trial write here begins with a no-op ``UPDATE`` of the trial
    row in the same transaction (the thread's scoped session, which Optuna's own write then uses
    and commits): it takes SQLite's write lock (a row lock elsewhere) before the state is read,
    so exactly one finish wins and every other write to a finished trial gets
    ``UpdateFinishedTrialError``.
    """

    def _locking_trial(self, trial_id: int) -> None:
        # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
        import sqlalchemy

        session = self.scoped_session()
        try:
            session.execute(
                sqlalchemy.text("UPDATE trials SET state = state WHERE trial_id = :id"),
                {"id": trial_id},
            )
        except BaseException:
            session.rollback()
            session.close()
            raise

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self._locking_trial(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._locking_trial(trial_id)
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._locking_trial(trial_id)
        super().set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._locking_trial(trial_id)
        super().set_trial_system_attr(trial_id, key, value)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # deferred: only RDB storages load SQLAlchemy (an in-memory worker never pays for it)
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        stale = super()._get_stale_trial_ids(study_id)
        assert self.heartbeat_interval is not None
        grace = self.grace_period or 2 * self.heartbeat_interval
        trial = models.TrialModel
        started: Any = getattr(trial, "_datetime_start_utc", None)  # newer Optuna stores UTC
        if started is None:  # older: the client's local clock
            started, deadline = trial.datetime_start, datetime.now() - timedelta(seconds=grace)
        else:
            now = datetime.now(UTC).replace(tzinfo=None)
            deadline = now - timedelta(seconds=grace)
        with _create_scoped_session(self.scoped_session, True) as session:
            never_beaten = (
                session.query(trial.trial_id)
                .filter(trial.study_id == study_id)
                .filter(trial.state == TrialState.RUNNING)
                .filter(~trial.heartbeats.any())
                .filter(started < deadline)
                .all()
            )
        return stale + [row[0] for row in never_beaten]


class JournalHeartbeatStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """Optuna's journal storage plus the heartbeat Optuna 5 only has for RDB storages.

    Every journal write is a record kept forever, so heartbeats are per worker, not per trial:
    a trial records once which worker asked it (:data:`WORKER_ATTR`), and each worker records one
    study system attr per interval for each study where it has running trials. Every worker
    sharing the journal sees them; stale trials are found and failed exactly as Optuna's
    ``fail_stale_trials`` does for RDB storages.
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
        self.log_backend = backend
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period or (2 * heartbeat_interval if heartbeat_interval else 0)
        self._stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's per-trial heartbeat (for callers outside this worker)."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def claim_trial(self, trial_id: int, worker_id: str) -> None:
        """Record that ``worker_id``'s heartbeats cover this trial (once, when it is asked)."""
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, WORKER_ATTR, worker_id)

    def record_worker_heartbeat(self, study_id: int, worker_id: str) -> None:
        """One record for all of this worker's running trials of the study."""
        self.set_study_system_attr(study_id, WORKER_HEARTBEAT_PREFIX + worker_id, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        deadline = time.time() - self._grace_period
        study_attrs = self.get_study_system_attrs(study_id)
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.system_attrs.get(WORKER_ATTR)
            last = study_attrs.get(WORKER_HEARTBEAT_PREFIX + worker) if worker else None
            if last is None:
                last = trial.system_attrs.get(HEARTBEAT_ATTR)
            if last is None:
                if _started_before(trial, deadline):
                    stale.append(trial._trial_id)
            elif last < deadline:
                stale.append(trial._trial_id)
        return stale

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
        self._commit: Callable[[], None] | None = None
        self.group_commits = self.kind in ("sqlite", "journal")
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
                    self._commit = group_committer(storage)
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
