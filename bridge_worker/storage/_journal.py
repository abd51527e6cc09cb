"""The heavy half of the journal backends (``journal://`` and ``redis://``): Optuna's journal
storage with heartbeats, the file lock, and identity read from the replayed log.

Imported by :mod:`bridge_worker.storage.journal` and :mod:`bridge_worker.storage.redis` only when
such a storage is opened; the one module that touches Optuna's private journal internals.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal._file import BaseJournalFileLock
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.storage.group_commit import GroupCommitJournalFileBackend
from bridge_worker.storage.identity import IDENTITY_ATTR, Identity
from bridge_worker.storage.redis_import import journal_redis_backend

HEARTBEAT_ATTR = "optuna_bridge:heartbeat"
"""Trial system attr holding the last heartbeat (UNIX time) on journal storages (as written by
earlier versions, one record per trial per interval; still honoured)."""
WORKER_ATTR = "optuna_bridge:worker"
"""Trial system attr naming the worker that asked the trial (journal storages)."""
WORKER_HEARTBEAT_PREFIX = "optuna_bridge:worker_heartbeat:"
"""Study system attr ``<prefix><worker id>``: that worker's last heartbeat (UNIX time) for all of
its running trials of the study (journal storages)."""


def journal_backend(url: str) -> Any:
    """The log a ``journal://`` or ``redis://`` URL names."""
    parts = urlsplit(url)
    if parts.scheme == "journal":
        return GroupCommitJournalFileBackend(parts.path, lock_obj=JournalFileFlock(parts.path))
    return journal_redis_backend()(url)


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


def _started_before(trial: FrozenTrial, deadline: float) -> bool:
    """A trial that never got a heartbeat is judged by its start: it is covered from the moment
    it was created, so a worker killed before its first heartbeat strands nothing."""
    start = trial.datetime_start
    return start is not None and start.timestamp() < deadline


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
        stale_trial_callback: Any,
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

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self._stale_trial_callback


def read_identity(storage: JournalStorage, name: str) -> Identity | None:
    """The identity in one catch-up read of the log's tail (no read per study)."""
    with storage._thread_lock:
        storage._sync_with_backend()
        for study in storage._replay_result.get_all_studies():
            if study.study_name == name:
                token = study.system_attrs.get(IDENTITY_ATTR)
                return Identity(study._study_id, token if isinstance(token, str) else None)
    return None
