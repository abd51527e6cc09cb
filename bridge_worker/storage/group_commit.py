"""Group commit: the writes of the frames read together become durable with one ``fsync``.

Optuna commits (and syncs) every storage write on its own: a ``tell`` on SQLite costs a
transaction with two ``fsync`` calls, on a journal file one ``fsync``, and a worker runs at the
disk's pace instead of the sampler's. Here every write still happens at once, in order and under
the storage's own locking (other workers see it as before), but the ``fsync`` is left to
a ``commit`` call, which the I/O loop makes before it writes any reply
(:mod:`bridge_worker.io.server`). So no reply leaves before its data is durable, exactly as before,
and frames that arrive in one read (a pipelining parent, the Elixir client's casts) share one
``fsync``.

* journal file (``journal:///path``): :class:`GroupCommitJournalFileBackend` appends without
  ``fsync``; ``commit`` syncs the file. A killed worker loses nothing it wrote (the kernel has the
  bytes); an OS crash loses nothing that was acknowledged.
* SQLite (``sqlite:///path``): the database is switched to WAL with ``synchronous=NORMAL``
  (commits are not synced one by one, and stay through a killed process); ``commit`` syncs the
  write-ahead log. The WAL mode stays with the database file (plain Optuna reads and writes it
  as before; WAL needs a local file system, as SQLite locking does anyway).

Other storages commit per write as Optuna does (PostgreSQL, MySQL, Redis, gRPC). Which storages
group-commit is each backend's answer (``Backend.group_commits`` and ``group_committer`` in
:mod:`bridge_worker.storage.backend`).

On SQLite the group commit saves ``fsync`` calls (~20 per trial to ~1 per group), but a trial on
Optuna's RDB storage is mostly SQLAlchemy's CPU (~18-20k Python calls), so on an idle disk it
gains little; it pays where ``fsync`` is slow (a busy or networked disk).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from optuna.storages.journal._file import BaseJournalFileLock

from bridge_worker.storage.journal_file import RepairingJournalFileBackend, cut_torn_tail_of


class GroupCommitJournalFileBackend(RepairingJournalFileBackend):
    """The repairing journal file backend (:mod:`bridge_worker.storage.journal_file`: a torn record
    is cut at the next append and skipped at read), appending without ``fsync``; :meth:`commit`
    syncs."""

    def __init__(self, file_path: str, lock_obj: BaseJournalFileLock) -> None:
        super().__init__(file_path, lock_obj)
        self._file_lock = lock_obj
        self._dirty = False

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._file_lock.acquire()
        try:
            # one descriptor cuts a torn tail (under the lock: no writer is mid-record) and appends
            fd = os.open(
                self._file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            try:
                cut_torn_tail_of(fd, self._file_path)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            self._file_lock.release()
        self._dirty = True

    def commit(self) -> None:
        if not self._dirty:
            return
        self._dirty = False  # before the sync: a write racing it marks the file again
        _fsync_path(self._file_path)


class SQLiteGroupCommit:
    """WAL + ``synchronous=NORMAL`` on every connection of ``engine``; :meth:`commit` syncs the
    WAL."""

    def __init__(self, engine: Any, database: str) -> None:
        import sqlalchemy

        self._wal = database + "-wal"
        self._dirty = False

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        def on_commit(_connection: Any) -> None:
            self._dirty = True

        sqlalchemy.event.listen(engine, "connect", on_connect)
        sqlalchemy.event.listen(engine, "commit", on_commit)
        engine.dispose()  # connections opened before the listener get the settings too

    def commit(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        with contextlib.suppress(FileNotFoundError):  # checkpointed and removed: synced then
            _fsync_path(self._wal)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
