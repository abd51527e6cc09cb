"""A storage backend that exists only for the tests: adding a backend is this one file.

``fakejournal:///path.log`` is Optuna's plain journal file storage (Optuna's own file lock, no
group commit, no heartbeats) behind the worker's backend interface: everything else (identity
checks, ``delete``, an import's stage-verify-swap, leases) runs on the answers
:class:`~bridge_worker.storage.backend.Backend` gives any storage. The shared-storage and import
tests run on it beside SQLite, the journal and PostgreSQL.

It is registered where it is imported: in the test process by ``conftest.py``, and in every worker
process the tests start with this directory on ``PYTHONPATH`` (Python imports ``sitecustomize`` at
start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge_worker.storage.backend import Backend
from bridge_worker.storage.backends import register

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from bridge_worker.storage.options import StorageOptions


class FakeJournalBackend(Backend):
    name = "fakejournal"
    schemes = ("fakejournal",)

    def check(self, options: StorageOptions) -> None:
        if not urlsplit(options.url).path:
            raise ValueError("fakejournal storage needs a path: fakejournal:///path/to/study.log")

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(urlsplit(options.url).path))


register(FakeJournalBackend())
