"""``optuna-bridge proxy``: Optuna's gRPC storage proxy in front of one database.

Hundreds of workers on many machines can share one study through it without a database
connection each: every worker runs with ``--storage grpc://proxy-host:port`` and the proxy holds
the only connection pool (with Optuna's in-process cache in front of an RDB storage, as
``optuna.storages.get_storage`` builds it). Optuna's proxy does not support journal storages, so
``journal://`` and ``redis://`` are refused at start-up.

Anyone who can call the proxy can read, change and delete every study, and plant data that runs
code in workers (see :mod:`bridge_worker.storage.proxy_auth`): it listens on loopback unless a
token is configured (``--token-file``; TLS with ``--tls-cert``/``--tls-key``). It owns its port: a
second proxy on a port in use is refused (gRPC would otherwise share the port with ``SO_REUSEPORT``
and split the workers, and so the data, between two storages).

The proxy writes one line on stdout once it listens,
``{"proxy":"ready","host":...,"port":...,"storage":"postgresql","pid":...,"tls":false}``, logs
JSON lines on stderr, and stops on SIGTERM, SIGINT or SIGHUP (after a grace of a few seconds for
calls in flight), exiting 0. Exit 2: a bad command line (a storage URL that can never work,
unreadable token or certificate files, a public ``--host`` without a token); exit 1: the storage
cannot be opened now, or the port cannot be bound. Every exit path writes its reason to stderr
before the process ends.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from bridge_worker.config import LEVELS
from bridge_worker.storage.backends import backend_for
from bridge_worker.storage.options import StorageOptions, check_options, storage_kind
from bridge_worker.storage.proxy_auth import (
    bearer,
    carries_token,
    is_loopback,
    read_pem,
    read_token,
)

STOP_GRACE_S = 5.0
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 1
SIGNAL_POLL_S = 0.2
SINK_DRAIN_S = 2.0
"""How long an exiting proxy waits for its last log lines to reach stderr."""


def _grpc_server(storage: Any, threads: int, token: str | None) -> Any:
    """Optuna's proxy service on a server of our own (``run_grpc_proxy_server`` would block
    without telling the port it bound or stopping cleanly on a signal, share its port with any
    other server, and take every caller)."""
    # deferred: grpc is an optional extra (``grpc``), needed by the proxy command only
    import grpc
    from optuna.storages._grpc import servicer
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    interceptors = [] if token is None else [_token_check(bearer(token).encode())]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads),
        interceptors=interceptors,
        options=[("grpc.so_reuseport", 0)],  # a port in use is an error, never shared
    )
    api_pb2_grpc.add_StorageServiceServicer_to_server(  # type: ignore[no-untyped-call]
        servicer.OptunaStorageProxyService(storage), server
    )
    return server


def _token_check(expected: bytes) -> Any:
    """A server interceptor answering ``UNAUTHENTICATED`` to every call without the token."""
    import grpc
    import structlog

    log = structlog.get_logger("bridge_worker.proxy")

    def refuse(request: bytes, context: Any) -> None:
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "this storage proxy needs its token (worker: --proxy-token-file)",
        )

    denied = grpc.unary_unary_rpc_method_handler(refuse)

    class TokenCheck(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            if carries_token(details.invocation_metadata or (), expected):
                return continuation(details)
            log.warning("call_refused", method=details.method, reason="no valid token")
            return denied

    return TokenCheck()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optuna-bridge proxy",
        description="Serve one storage to many workers (--storage grpc://host:port) through "
        "Optuna's gRPC storage proxy. Anyone who can call it can change every study and run "
        "code in workers: it listens on loopback unless --token-file is given.",
    )
    parser.add_argument(
        "--storage",
        required=True,
        help="the storage to serve: postgresql+psycopg2://..., mysql+pymysql://..., "
        "sqlite:///path.db or memory (journal storages are not supported by Optuna's proxy)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other address needs --token-file)",
    )
    parser.add_argument("--port", type=int, default=13000, help="port to listen on (0: any)")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="a shared secret (one line, at least 16 characters) every call must carry; "
        "workers read it with --proxy-token-file",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--threads",
        type=int,
        default=32,
        metavar="N",
        help="threads answering calls (default 32)",
    )
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    args = parser.parse_args(argv)
    try:
        kind = storage_kind(args.storage)
    except ValueError as exc:
        parser.error(str(exc))
    if not backend_for(args.storage).proxied:
        parser.error(
            f"Optuna's gRPC proxy cannot serve a {kind} storage; use an RDB storage "
            "(postgresql, mysql, sqlite) or memory"
        )
    try:
        check_options(StorageOptions(args.storage))
        args.token = None if args.token_file is None else read_token(args.token_file)
        args.tls = _read_tls(args.tls_cert, args.tls_key)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.token is None and not is_loopback(args.host):
        parser.error(
            f"--host {args.host} lets other machines call the proxy, and anyone who can "
            "call it can change every study and run code in workers: give --token-file "
            "(and --tls-cert/--tls-key), or listen on 127.0.0.1"
        )
    args.kind = kind
    return args


def _read_tls(cert: str | None, key: str | None) -> tuple[bytes, bytes] | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    return read_pem(key, "TLS key"), read_pem(cert, "TLS certificate")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        import grpc  # noqa: F401
    except ImportError:  # said before the log sink takes stderr, so it is written before exit
        sys.stderr.write("optuna-bridge proxy needs grpcio: pip install 'optuna-bridge[grpc]'\n")
        return EXIT_USAGE
    # deferred until the command line is read: --help answers without importing Optuna
    from bridge_worker.io import logs

    ready_out = sys.stdout  # logs.configure points sys.stdout at the log sink (stderr)
    sink = logs.configure(args.log_level)
    try:
        return _serve(args, ready_out)
    finally:  # every exit path: the reason is on stderr before the process ends
        sink.drain(SINK_DRAIN_S)


def _serve(args: argparse.Namespace, ready_out: Any) -> int:
    import grpc
    import optuna
    import structlog

    from bridge_worker.storage.handle import open_storage

    log = structlog.get_logger("bridge_worker.proxy")
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        storage = optuna.storages.get_storage(open_storage(StorageOptions(args.storage)))
    except Exception as exc:
        log.error("storage_unavailable", storage=args.kind, error=f"{type(exc).__name__}: {exc}")
        return EXIT_UNAVAILABLE
    server = _grpc_server(storage, args.threads, args.token)
    address = f"{args.host}:{args.port}"
    try:
        if args.tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, grpc.ssl_server_credentials([args.tls]))
    except RuntimeError as exc:  # grpcio: "Failed to bind to address"
        port, error = 0, str(exc)
    else:
        error = "grpc could not bind it"
    if not port:
        log.error(
            "cannot_listen",
            host=args.host,
            port=args.port,
            error=f"cannot listen on {address}: the port is in use (another proxy?) or the "
            f"address is not this machine's ({error})",
        )
        return EXIT_UNAVAILABLE
    server.start()
    ready = {
        "proxy": "ready",
        "host": args.host,
        "port": port,
        "storage": args.kind,
        "pid": os.getpid(),
        "tls": args.tls is not None,
    }
    ready_out.write(json.dumps(ready, separators=(",", ":")) + "\n")  # the proxy's own stdout
    ready_out.flush()
    log.info(
        "proxy_listening",
        host=args.host,
        port=port,
        storage=args.kind,
        tls=args.tls is not None,
        token=args.token is not None,
    )
    if args.token is not None and args.tls is None and not is_loopback(args.host):
        log.warning(
            "token_in_clear",
            hint="without --tls-cert/--tls-key the token and all data "
            "cross the network unencrypted",
        )
    # A timed wait: a signal delivered to one of grpc's threads only runs its Python handler
    # when the main thread next runs bytecode, which an untimed wait may never do.
    while not stopped.wait(SIGNAL_POLL_S):
        pass
    server.stop(STOP_GRACE_S).wait()
    log.info("stopped")
    return 0
