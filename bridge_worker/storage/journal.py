"""``journal:///path.log``: Optuna's journal file storage, appended without ``fsync`` and synced
once per group (:mod:`bridge_worker.storage.group_commit`), locked with ``flock``, with the
per-worker heartbeats Optuna only has for RDB storages (:mod:`bridge_worker.storage._journal`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge_worker.storage.backend import Backend, require_directory
from bridge_worker.storage.identity import Identity

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, JournalStorage

    from bridge_worker.storage.options import StorageOptions


class JournalBackend(Backend):
    name = "journal"
    schemes: tuple[str, ...] = ("journal",)
    heartbeats = True

    def check(self, options: StorageOptions) -> None:
        path = urlsplit(options.url).path
        if not path:
            raise ValueError("journal storage needs a path: journal:///path/to/study.log")
        require_directory(path)

    def group_commits(self, url: str) -> bool:
        return True

    def group_committer(self, storage: BaseStorage) -> Callable[[], None] | None:
        from bridge_worker.storage._journal import JournalHeartbeatStorage
        from bridge_worker.storage.group_commit import GroupCommitJournalFileBackend

        assert isinstance(storage, JournalHeartbeatStorage)
        log = storage.log_backend
        assert isinstance(log, GroupCommitJournalFileBackend)  # journal_backend() made it
        return log.commit

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        from bridge_worker.storage._journal import JournalHeartbeatStorage, journal_backend

        return JournalHeartbeatStorage(
            journal_backend(options.url),
            heartbeat_interval=options.heartbeat,
            grace_period=options.grace_period,
            stale_trial_callback=stale_trial_callback,
        )

    def read_identity(self, storage: BaseStorage, name: str) -> Identity | None:
        from bridge_worker.storage import _journal

        journal: JournalStorage = storage  # type: ignore[assignment]
        return _journal.read_identity(journal, name)
