"""Who may use the gRPC storage proxy: a shared token, optional TLS, and loopback by default.

Write access to an Optuna storage is code execution in every process that later runs a sampler
keeping pickles in trial attrs (CMA-ES unpickles its optimizer from a system attr), so the
proxy's port is as sensitive as the database password. The proxy therefore listens on loopback
unless the operator configures a token (``--token-file``): every call must then carry it as gRPC
metadata (:data:`METADATA_KEY`, ``Bearer <token>``) and others get ``UNAUTHENTICATED``. TLS
(``--tls-cert``/``--tls-key`` on the proxy, ``--proxy-tls-ca`` on the worker) keeps the token and
the data private on the way.

Pure and free of grpc: the command lines (proxy and worker) read and check these files before
anything heavy is imported; :mod:`bridge_worker.proxy` and
:mod:`bridge_worker.storage.grpc_storage` use
them with grpc.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

__all__ = [
    "METADATA_KEY",
    "MIN_TOKEN_CHARS",
    "bearer",
    "carries_token",
    "is_loopback",
    "read_pem",
    "read_token",
]

METADATA_KEY = "authorization"
"""gRPC metadata key carrying ``Bearer <token>`` on every call (lower case, as gRPC requires)."""

MIN_TOKEN_CHARS = 16
"""A shorter secret is refused: it could be guessed through the port."""

MAX_FILE_BYTES = 1 << 20


def read_token(path: str, what: str = "token") -> str:
    """The secret in ``path`` (surrounding whitespace removed); a ValueError for argparse. Also
    reads the snapshot signing key (``--snapshot-key``)."""
    token = _read(path, what).decode("utf-8", "replace").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"the {what} in {path} is shorter than {MIN_TOKEN_CHARS} characters "
            "(make one with: openssl rand -hex 32 > FILE)"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ValueError(
            f"the {what} in {path} must be one line of printable characters without spaces"
        )
    return token


def read_pem(path: str, what: str) -> bytes:
    """A PEM file (certificate, key or CA bundle) as bytes; a ValueError for argparse."""
    data = _read(path, what)
    if b"-----BEGIN " not in data:
        raise ValueError(f"the {what} file {path} is not PEM (no -----BEGIN line)")
    return data


def bearer(token: str) -> str:
    return "Bearer " + token


def carries_token(metadata: Iterable[tuple[str, str | bytes]], expected: bytes) -> bool:
    """Whether a call's metadata holds the expected ``Bearer <token>`` (compared in constant
    time, so the port does not leak the token byte by byte)."""
    for key, value in metadata:
        if key == METADATA_KEY:
            given = value.encode() if isinstance(value, str) else value
            if hmac.compare_digest(given, expected):
                return True
    return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the {what} file {path} is larger than {MAX_FILE_BYTES} bytes")
    return data
