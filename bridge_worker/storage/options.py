"""What the operator chose about storage (``--storage`` and the heartbeat flags), and the checks
that refuse, at start-up, a URL or a combination that can never work.

Apart from :mod:`bridge_worker.storage.handle` (which opens the storage) so that the command line
can be read and checked without importing Optuna: ``optuna-bridge --help`` and a bad flag answer at
once. What depends on the kind of storage is asked of its backend
(:mod:`bridge_worker.storage.backends`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge_worker.storage.backend import Backend
from bridge_worker.storage.backends import backend_for
from bridge_worker.storage.grpc import grpc_address

__all__ = ["StorageOptions", "check_options", "grpc_address", "storage_kind"]


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
    proxy_token: str | None = field(default=None, repr=False)
    """The gRPC proxy's shared token (read from ``--proxy-token-file``; never logged)."""
    proxy_tls_ca: bytes | None = field(default=None, repr=False)
    """CA certificates (PEM) the gRPC proxy's TLS certificate is checked against; None: no TLS."""
    proxy_timeout: float = 10.0
    """Seconds one call to the gRPC proxy may take before it is a ``storage_error``."""

    @property
    def kind(self) -> str:
        return storage_kind(self.url)

    @property
    def backend(self) -> Backend:
        return backend_for(self.url)


def storage_kind(url: str) -> str:
    """What the ``ready`` frame and logs say about a storage: its kind, never a URL or password.

    ``postgresql+psycopg2://user:secret@host/db`` is ``postgresql``.
    """
    return backend_for(url).kind(url)


def check_options(options: StorageOptions) -> None:
    """Reject, at start-up, option combinations that cannot work (a ValueError for argparse).

    A URL that can never work (unknown scheme, malformed, driver not installed) is refused here,
    before ``ready`` (each backend's :meth:`~bridge_worker.storage.backend.Backend.check`); only a
    server that cannot be reached right now is left to ``storage_error`` replies, because it may
    come up later.
    """
    backend = backend_for(options.url)
    backend.check(options)
    if not backend.proxy_client:
        if options.proxy_token is not None or options.proxy_tls_ca is not None:
            raise ValueError("--proxy-token-file and --proxy-tls-ca need --storage grpc://...")
    elif not 0 < options.proxy_timeout <= 3600:
        raise ValueError("--proxy-timeout must be more than 0 and at most 3600 seconds")
    if options.heartbeat is None:
        if options.grace_period is not None or options.retry_failed is not None:
            raise ValueError("--grace-period and --retry-failed need --heartbeat")
        return
    if not backend.heartbeats:
        raise ValueError(backend.no_heartbeats)
    if options.heartbeat < 1:
        raise ValueError("--heartbeat must be at least 1 second")
