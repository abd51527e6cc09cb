"""The one interface every storage backend implements.

A backend is what the worker must know about one kind of ``--storage`` URL, and nothing outside
its module knows more: how the URL is checked at start-up (without contacting a server), how it is
opened, whether other processes share it, whether it keeps heartbeats, how a study's identity is
read and a study deleted safely, whether an import's swap is one transaction, how it counts trials
in bulk, and which of its exceptions are storage failures (``storage_error``) or a harmless race
when opening. Every method has the answer that is right for any Optuna storage; a backend
overrides only where it can do better.

Backends are chosen by URL scheme from the table in :mod:`bridge_worker.storage.backends`: adding
one is a module with a :class:`Backend` subclass plus one row there (or a
:func:`~bridge_worker.storage.backends.register` call, as the test-only backend in
``tests/fake_storage/sitecustomize.py`` does).

This module imports no Optuna (the command line checks URLs with it before anything heavy is
loaded): a backend defers its Optuna imports into :meth:`Backend.open` and the methods that take an
opened storage.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bridge_worker.storage.identity import Identity, delete_by_id, read_by_api
from bridge_worker.wire.storage_bounds import MAX_INT, MAX_SQL_STEP

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from bridge_worker.storage.options import StorageOptions


@dataclass(frozen=True, slots=True)
class StagedSwap:
    """A staged import ready to take its name (:meth:`Backend.swap_staged`)."""

    staging_id: int
    staging_name: str
    target: str
    """The name the import is for."""
    current: Identity | None
    """The study the name holds now (checked by the caller), or None."""
    replaces: str | None
    """The identity token of the study the import replaces, as its record says."""
    record_attr: str
    """The staging study's system attr holding the recovery record (dropped by the swap)."""


class Backend:
    """One kind of storage. Class attributes are its fixed properties; methods take the URL or
    the options before it is opened, and the opened Optuna storage after."""

    name: str = ""
    """The storage's kind as the ``ready`` frame and logs say it (never a URL or a password)."""
    schemes: tuple[str, ...] = ()
    """URL schemes (the part before ``+driver``) this backend serves."""
    shared: bool = True
    """Other processes may change it under this worker (cached studies are checked against the
    name's identity, leases may end in another worker)."""
    durable: bool = True
    """It outlives the worker (False: replies may be gathered, nothing is lost with it)."""
    heartbeats: bool = False
    """``--heartbeat`` is available (Optuna's stale-trial check runs on it)."""
    no_heartbeats: str = "--heartbeat is not available on this storage"
    """Why ``--heartbeat`` is refused where it is not available."""
    sql: bool = False
    """An SQL schema is underneath (or may be: the gRPC proxy): 32-bit steps, bounded inserts."""
    proxy_client: bool = False
    """The gRPC proxy's client options (``--proxy-token-file``, ...) apply."""
    proxied: bool = False
    """``optuna-bridge proxy`` (Optuna's gRPC proxy) can serve this storage."""

    def kind(self, url: str) -> str:
        return self.name

    @property
    def max_step(self) -> int:
        """The largest intermediate-value step the storage holds."""
        return MAX_SQL_STEP if self.sql else MAX_INT

    def check(self, options: StorageOptions) -> None:
        """Refuse, at start-up, a URL or option that can never work (a ValueError for argparse).
        Never contacts a server: one that is down now may be up later."""

    def group_commits(self, url: str) -> bool:
        """Whether writes are synced once per group (:mod:`bridge_worker.storage.group_commit`):
        decided from the URL before the storage is opened (the I/O loop is set up by it)."""
        return False

    def group_committer(self, storage: BaseStorage) -> Callable[[], None] | None:
        """For a storage this backend opened with :meth:`group_commits` true: the call that makes
        every write so far durable (the I/O loop makes it before it writes any reply)."""
        return None

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        """Open the storage now (connects to a database; may raise)."""
        raise NotImplementedError

    def retry_open(self, exc: Exception) -> bool:
        """Whether a failure to open is a race with peers opening it at once (try again)."""
        return False

    def is_storage_failure(self, exc: BaseException) -> bool:
        """Whether an exception of this backend's libraries is a ``storage_error`` (beyond
        Optuna's ``StorageInternalError`` and ``OSError``, which always are)."""
        return False

    def read_identity(self, storage: BaseStorage, name: str) -> Identity | None:
        """The identity of the study named ``name`` (:mod:`bridge_worker.storage.identity`)."""
        return read_by_api(storage, name)

    def delete_if_identical(self, storage: BaseStorage, identity: Identity) -> bool:
        """Delete the study only if it still has this identity; False (nothing deleted)
        otherwise. The default is right where ids are never reused (deleting by id cannot hit
        another study)."""
        return delete_by_id(storage, identity)

    def delete(
        self, storage: BaseStorage, identity: Identity, should_stop: Callable[[], bool]
    ) -> bool:
        """``delete`` of a served study: False when it no longer has this identity."""
        return self.delete_if_identical(storage, identity)

    def purge_abandoned(self, storage: BaseStorage, should_stop: Callable[[], bool]) -> int:
        """Finish deletes a killed worker left unfinished (at the storage's first use)."""
        return 0

    def swap_staged(self, storage: BaseStorage, swap: StagedSwap) -> bool:
        """Give a staged import the target name in one step, deleting the study it replaces
        and dropping the staging study's recovery record. False: this storage cannot rename,
        and the import is copied under the name instead
        (:mod:`bridge_worker.studies.staged_import`)."""
        return False

    def may_have_waiting_trials(self, storage: BaseStorage, study_id: int) -> bool:
        """Whether the study may hold enqueued (``WAITING``) trials an ``ask`` must take first.
        True (look, as Optuna's ask does) where a cheaper answer than Optuna's own look is not
        known."""
        return True

    def count_trials(
        self, storage: BaseStorage, hidden_prefix: str
    ) -> dict[int, tuple[int, int]] | None:
        """``{study_id: (n_trials, n_running)}`` of every study not hidden under the prefix, in
        one read; None where counting study by study is as cheap."""
        return None


def require_directory(path: str) -> None:
    """A database or journal file in a directory that does not exist can never be opened (no
    retry makes the directory): refuse it at start-up, naming the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"the directory {directory!r} of the storage file does not exist")


@runtime_checkable
class WorkerHeartbeats(Protocol):
    """A heartbeat target that records one beat per worker and study (journal storages, where
    every write is kept forever) instead of one per trial."""

    def claim_trial(self, trial_id: int, worker_id: str) -> None: ...

    def record_worker_heartbeat(self, study_id: int, worker_id: str) -> None: ...


_OPENED: weakref.WeakKeyDictionary[Any, Backend] = weakref.WeakKeyDictionary()
"""The backend that opened each storage this process opened."""


def remember(storage: BaseStorage, backend: Backend) -> None:
    _OPENED[storage] = backend


def opened_by(storage: BaseStorage) -> Backend:
    """The backend that opened ``storage`` (a storage opened elsewhere, by plain Optuna in a test
    or a script, gets the answers that are right for any storage)."""
    return _OPENED.get(storage, GENERIC)


def is_shared(storage: BaseStorage) -> bool:
    """Whether other processes can change the storage under us (in-memory storage is private
    to this worker, whose own cache is always right). Asked by every frame about a study: kept
    here, where :func:`opened_by` is, because an import inside a function costs ~2 us a call."""
    return opened_by(storage).shared


GENERIC = Backend()
