"""What the operator chose about storage (``--storage`` and the heartbeat flags), and the checks
that refuse, at start-up, a URL or a combination that can never work.

Apart from :mod:`bridge_worker.storage.handle` (which opens the storage) so that the command line
can be read and checked without importing Optuna: ``optuna-bridge --help`` and a bad flag answer at
once.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["StorageOptions", "check_options", "grpc_address", "storage_kind"]

_JOURNAL_SCHEMES = {"journal": "journal", "redis": "redis", "rediss": "redis"}


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


def storage_kind(url: str) -> str:
    """What the ``ready`` frame and logs say about a storage: its kind, never a URL or password.

    ``postgresql+psycopg2://user:secret@host/db`` is ``postgresql``.
    """
    if url == "memory":
        return "memory"
    scheme = urlsplit(url).scheme
    if not scheme:
        raise ValueError(f"not a storage URL: {url!r} (expected memory, sqlite:///path.db, ...)")
    return _JOURNAL_SCHEMES.get(scheme, scheme.split("+", 1)[0])


def check_options(options: StorageOptions) -> None:
    """Reject, at start-up, option combinations that cannot work (a ValueError for argparse).

    A URL that can never work (unknown scheme, malformed, driver not installed) is refused here,
    before ``ready``; only a server that cannot be reached right now is left to ``storage_error``
    replies, because it may come up later.
    """
    kind = storage_kind(options.url)
    if kind == "journal":
        path = urlsplit(options.url).path
        if not path:
            raise ValueError("journal storage needs a path: journal:///path/to/study.log")
        _require_directory(path)
    if kind == "grpc":
        grpc_address(options.url)
    elif kind == "redis":
        _require_module("redis", "redis")
    elif kind not in ("memory", "journal", "grpc"):
        _check_sqlalchemy_url(options.url)
    _check_proxy_client(options, kind)
    if options.heartbeat is None:
        if options.grace_period is not None or options.retry_failed is not None:
            raise ValueError("--grace-period and --retry-failed need --heartbeat")
        return
    if kind == "memory":
        raise ValueError("--heartbeat needs a durable storage (RDB or journal), not memory")
    if kind == "grpc":
        raise ValueError("--heartbeat is not available through the gRPC proxy (Optuna's proxy has "
                         "no heartbeats); use trial leases (ask with lease_s) instead")
    if options.heartbeat < 1:
        raise ValueError("--heartbeat must be at least 1 second")


def _check_proxy_client(options: StorageOptions, kind: str) -> None:
    if kind != "grpc":
        if options.proxy_token is not None or options.proxy_tls_ca is not None:
            raise ValueError("--proxy-token-file and --proxy-tls-ca need --storage grpc://...")
        return
    if not 0 < options.proxy_timeout <= 3600:
        raise ValueError("--proxy-timeout must be more than 0 and at most 3600 seconds")


def _require_module(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"this storage needs the {module!r} package: pip install 'optuna-bridge[{extra}]'"
        )


def _check_sqlalchemy_url(url: str) -> None:
    """Everything about an RDB URL that needs no server: SQLAlchemy parses it, finds the dialect
    and imports the driver, and the dialect turns it into connection arguments (where a
    ``sqlite://hpo.db`` with two slashes fails). Messages never repeat the URL (passwords)."""
    # deferred: only an RDB URL needs SQLAlchemy to be checked (and this module is imported by
    # the command-line config, which must answer --help at once)
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
            hint = (": use postgresql+psycopg2://... with pip install 'optuna-bridge[postgres]', "
                    "or pip install 'psycopg[binary]' and use postgresql+psycopg://...")
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
        _require_directory(parsed.database)


def _require_directory(path: str) -> None:
    """A database or journal file in a directory that does not exist can never be opened (no
    retry makes the directory): refuse it at start-up, naming the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"the directory {directory!r} of the storage file does not exist")


def grpc_address(url: str) -> tuple[str, int]:
    """``grpc://host:port`` as (host, port); a ValueError (for argparse) otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ValueError(f"a gRPC proxy storage is grpc://host:port, got {url!r}")
    return parts.hostname, port


