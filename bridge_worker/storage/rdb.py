"""SQL databases through Optuna's RDB storage: ``sqlite:///``, ``postgresql+psycopg2://``,
``mysql+...://`` and any other SQLAlchemy URL (this backend serves every scheme no other backend
claims, and its start-up check refuses a scheme SQLAlchemy does not know).

What the RDB storage does better than the defaults (identity in one query, a delete in short
transactions, an import's swap in one transaction, trial counts in one query) lives in
:mod:`bridge_worker.storage._rdb`, imported only once such a storage is opened.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge_worker.storage.backend import Backend, StagedSwap, require_directory
from bridge_worker.storage.identity import Identity

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, RDBStorage

    from bridge_worker.storage.options import StorageOptions

CONNECT_TIMEOUT_S = 10


class RDBBackend(Backend):
    name = "rdb"
    schemes = ("sqlite", "postgresql", "mysql")
    heartbeats = True
    sql = True
    proxied = True

    def kind(self, url: str) -> str:
        """``postgresql+psycopg2://user:secret@host/db`` is ``postgresql``."""
        return urlsplit(url).scheme.split("+", 1)[0]

    def check(self, options: StorageOptions) -> None:
        check_sqlalchemy_url(options.url)

    def group_commits(self, url: str) -> bool:
        """A SQLite database file (not ``:memory:``, not a ``file:`` URI, whose options may say
        otherwise): WAL with ``synchronous=NORMAL``, the log synced once per group."""
        return sqlite_file(url) is not None

    def group_committer(self, storage: BaseStorage) -> Callable[[], None] | None:
        from bridge_worker.storage.group_commit import SQLiteGroupCommit

        engine = _as_rdb(storage).engine
        assert engine.url.database  # group_commits(url): a database file
        return SQLiteGroupCommit(engine, engine.url.database).commit

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        from bridge_worker.storage._rdb import HeartbeatRDBStorage

        engine_kwargs: dict[str, Any] = {
            # A database restarted under a running worker leaves dead pooled connections
            # behind; pre-ping replaces them instead of failing the next frame.
            "pool_pre_ping": True,
        }
        if self.kind(options.url) == "postgresql":
            # An unreachable host must cost a frame seconds, not the TCP timeout of minutes.
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        return HeartbeatRDBStorage(
            options.url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=options.heartbeat,
            grace_period=options.grace_period,
            heartbeat_stale_trial_callback=stale_trial_callback,
        )

    def retry_open(self, exc: Exception) -> bool:
        """Workers that start together on an empty database race to create Optuna's tables; the
        losers see an IntegrityError (the tables exist then)."""
        return type(exc).__name__ == "IntegrityError"

    def is_storage_failure(self, exc: BaseException) -> bool:
        sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")  # loaded only once a database is
        return sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.SQLAlchemyError)

    def read_identity(self, storage: BaseStorage, name: str) -> Identity | None:
        from bridge_worker.storage import _rdb

        return _rdb.read_identity(_as_rdb(storage), name)

    def delete_if_identical(self, storage: BaseStorage, identity: Identity) -> bool:
        from bridge_worker.storage import _rdb

        if identity.token is None:
            return super().delete_if_identical(storage, identity)
        return _rdb.delete_if_identical(_as_rdb(storage), identity)

    def delete(
        self, storage: BaseStorage, identity: Identity, should_stop: Callable[[], bool]
    ) -> bool:
        """Hidden at once, then removed in short transactions (:mod:`~.storage._rdb`)."""
        from bridge_worker.storage import _rdb

        if identity.token is None:
            return super().delete(storage, identity, should_stop)
        return _rdb.delete_study(_as_rdb(storage), identity, should_stop) is not None

    def purge_abandoned(self, storage: BaseStorage, should_stop: Callable[[], bool]) -> int:
        from bridge_worker.storage import _rdb

        return _rdb.purge_abandoned(_as_rdb(storage), should_stop)

    def swap_staged(self, storage: BaseStorage, swap: StagedSwap) -> bool:
        """One transaction: readers see the old study or the new one, never neither."""
        from bridge_worker.storage import _rdb

        _rdb.swap_staged(
            _as_rdb(storage),
            swap.staging_id,
            swap.staging_name,
            swap.target,
            swap.replaces,
            swap.record_attr,
        )
        return True

    def may_have_waiting_trials(self, storage: BaseStorage, study_id: int) -> bool:
        """One indexed query: Optuna's ask reads every trial finished since its last read, with
        their params and attrs (~6 statements), to find enqueued ones."""
        from bridge_worker.storage import _rdb

        return _rdb.has_waiting_trials(_as_rdb(storage), study_id)

    def count_trials(
        self, storage: BaseStorage, hidden_prefix: str
    ) -> dict[int, tuple[int, int]] | None:
        from bridge_worker.storage import _rdb

        return _rdb.count_trials(_as_rdb(storage), hidden_prefix)


def _as_rdb(storage: BaseStorage) -> RDBStorage:
    """The storage as what this backend opened."""
    return storage  # type: ignore[return-value]


def sqlite_file(url: str) -> str | None:
    """The database file a ``sqlite://`` URL names (None: another database, or none on disk)."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] != "sqlite":
        return None
    database = parts.path[1:]  # sqlite:///relative.db and sqlite:////absolute.db
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def check_sqlalchemy_url(url: str) -> None:
    """Everything about an RDB URL that needs no server: SQLAlchemy parses it, finds the dialect
    and imports the driver, and the dialect turns it into connection arguments (where a
    ``sqlite://hpo.db`` with two slashes fails). Messages never repeat the URL (passwords)."""
    # deferred: only an RDB URL needs SQLAlchemy to be checked (the command line imports this
    # module, and must answer --help at once)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = urlsplit(url).scheme
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"malformed storage URL (scheme {scheme!r})") from None
    try:
        dialect_cls = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"unknown storage scheme {scheme!r}: expected memory, sqlite:///path.db, "
            "journal:///path.log, redis://host:port/db or another SQLAlchemy URL "
            "(postgresql+psycopg2://user@host/db, mysql+pymysql://...)"
        ) from None
    try:
        dbapi = dialect_cls.import_dbapi()
    except ImportError as exc:
        hint = ""
        if parsed.get_backend_name() == "postgresql":
            hint = (
                ": use postgresql+psycopg2://... with pip install 'optuna-bridge[postgres]', "
                "or pip install 'psycopg[binary]' and use postgresql+psycopg://..."
            )
        raise ValueError(
            f"the database driver for {scheme!r} is not installed ({exc.name or exc}){hint}"
        ) from None
    try:
        dialect_cls(dbapi=dbapi).create_connect_args(parsed)  # type: ignore[call-arg]
    except ArgumentError as exc:
        first_line = str(exc).splitlines()[0]
        if parsed.drivername.startswith("sqlite"):  # its message is the fix (no password)
            first_line = " ".join(str(exc).split())
        raise ValueError(f"malformed {parsed.get_backend_name()} URL: {first_line}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        require_directory(parsed.database)
