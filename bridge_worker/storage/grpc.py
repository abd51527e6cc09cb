"""``grpc://host:port``: Optuna's gRPC storage proxy (``optuna-bridge proxy``,
:mod:`bridge_worker.proxy`), which lets many workers share one database without a connection each.
The client side made safe to use (token, TLS, call deadlines, identity-following cache) is
:mod:`bridge_worker.storage.grpc_storage`, imported only when such a storage is opened (it imports
grpc, an extra).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bridge_worker.storage.backend import Backend
from bridge_worker.wire.errors import BridgeError, ErrorKind

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from bridge_worker.storage.options import StorageOptions

GRPC_CONNECT_TIMEOUT_S = 2
"""How long opening a ``grpc://`` storage waits for the proxy (a refused connection is retried
by gRPC until then, so this is what a frame costs while the proxy is down)."""


class GrpcBackend(Backend):
    name = "grpc"
    schemes = ("grpc",)
    sql = True  # the proxy may stand for any SQL database: 32-bit steps
    proxy_client = True
    no_heartbeats = (
        "--heartbeat is not available through the gRPC proxy (Optuna's proxy has no "
        "heartbeats); use trial leases (ask with lease_s) instead"
    )

    def check(self, options: StorageOptions) -> None:
        grpc_address(options.url)

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        return _grpc_proxy(options)

    def is_storage_failure(self, exc: BaseException) -> bool:
        grpc = sys.modules.get("grpc")  # the gRPC storage proxy went away
        return grpc is not None and isinstance(exc, grpc.RpcError)


def _grpc_proxy(options: StorageOptions) -> BaseStorage:
    """Optuna's gRPC storage client with the token, TLS and call deadlines the operator chose
    (:mod:`bridge_worker.storage.grpc_storage`), once the proxy answers (a proxy that is down is a
    ``storage_error`` after GRPC_CONNECT_TIMEOUT_S, retried at the next frame)."""
    try:
        import grpc  # noqa: F401  (Optuna imports it only when the proxy is first used)
    except ImportError as exc:
        raise BridgeError(
            ErrorKind.MISSING_DEPENDENCY,
            "the grpc:// storage needs the Python package 'grpcio', which is not installed: "
            "pip install 'optuna-bridge[grpc]'",
            package="grpcio",
            extra="grpc",
        ) from exc
    from bridge_worker.storage.grpc_storage import ProxyStorage  # deferred: imports grpc, an extra

    host, port = grpc_address(options.url)
    storage = ProxyStorage(
        host=host,
        port=port,
        token=options.proxy_token,
        tls_ca=options.proxy_tls_ca,
        timeout=options.proxy_timeout,
    )
    try:
        storage.wait_server_ready(timeout=GRPC_CONNECT_TIMEOUT_S)
    except BaseException:
        storage.close()
        raise
    return storage


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
