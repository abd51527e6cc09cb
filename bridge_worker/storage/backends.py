"""The table of storage backends: URL scheme -> :class:`~bridge_worker.storage.backend.Backend`.

One row per backend module; a URL whose scheme no row claims is an SQLAlchemy URL for the RDB
backend (whose start-up check refuses a scheme SQLAlchemy does not know). :func:`register` adds
a row at run time (a plugin, or the test-only backend in ``tests/fake_storage/``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bridge_worker.storage.backend import Backend
from bridge_worker.storage.grpc import GrpcBackend
from bridge_worker.storage.journal import JournalBackend
from bridge_worker.storage.memory import MemoryBackend
from bridge_worker.storage.rdb import RDBBackend
from bridge_worker.storage.redis import RedisBackend
from bridge_worker.wire.errors import add_storage_failure

SQL_DEFAULT = RDBBackend()
"""The backend of every scheme no row claims (SQLAlchemy's URLs)."""

_BY_SCHEME: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Add a backend: its schemes are routed to it, its exceptions become ``storage_error``."""
    for scheme in backend.schemes:
        _BY_SCHEME[scheme] = backend
    add_storage_failure(backend.is_storage_failure)


for _row in (MemoryBackend(), SQL_DEFAULT, JournalBackend(), RedisBackend(), GrpcBackend()):
    register(_row)


def backend_for(url: str) -> Backend:
    """The backend of a ``--storage`` URL (a ValueError for argparse when it is no URL)."""
    if url == "memory":
        return _BY_SCHEME["memory"]
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(f"not a storage URL: {url!r} (expected memory, sqlite:///path.db, ...)")
    return _BY_SCHEME.get(scheme, _BY_SCHEME.get(scheme.split("+", 1)[0], SQL_DEFAULT))
