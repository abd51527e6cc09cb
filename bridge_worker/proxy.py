"""``optuna-bridge proxy``: Optuna's gRPC storage proxy in front of one database.

Hundreds of workers on many machines can share one study through it without a database
connection each: every worker runs with ``--storage grpc://proxy-host:port`` and the proxy holds
the only connection pool (with Optuna's in-process cache in front of an RDB storage, as
``optuna.storages.get_storage`` builds it). Optuna's proxy does not support journal storages, so
``journal://`` and ``redis://`` are refused at start-up.

The proxy writes one line on stdout once it listens,
``{"proxy":"ready","host":...,"port":...,"storage":"postgresql","pid":...}``, logs JSON lines on
stderr, and stops on SIGTERM, SIGINT or SIGHUP (after a grace of a few seconds for calls in
flight), exiting 0.
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
from bridge_worker.storage_options import storage_kind

STOP_GRACE_S = 5.0


def _grpc_server(storage: Any, threads: int) -> Any:
    """Optuna's proxy service on a server of our own (``run_grpc_proxy_server`` would block
    without telling the port it bound or stopping cleanly on a signal)."""
    # deferred: grpc is an optional extra (``grpc``), needed by the proxy command only
    import grpc
    from optuna.storages._grpc import servicer
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=threads))
    api_pb2_grpc.add_StorageServiceServicer_to_server(  # type: ignore[no-untyped-call]
        servicer.OptunaStorageProxyService(storage), server
    )
    return server


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optuna-bridge proxy",
        description="Serve one storage to many workers (--storage grpc://host:port) through "
        "Optuna's gRPC storage proxy.",
    )
    parser.add_argument(
        "--storage", required=True,
        help="the storage to serve: postgresql+psycopg2://..., mysql+pymysql://..., "
        "sqlite:///path.db or memory (journal storages are not supported by Optuna's proxy)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=13000, help="port to listen on (0: any)")
    parser.add_argument(
        "--threads", type=int, default=32, metavar="N",
        help="threads answering calls (default 32)",
    )
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    args = parser.parse_args(argv)
    try:
        kind = storage_kind(args.storage)
    except ValueError as exc:
        parser.error(str(exc))
    if kind in ("journal", "redis", "grpc"):
        parser.error(f"Optuna's gRPC proxy cannot serve a {kind} storage; use an RDB storage "
                     "(postgresql, mysql, sqlite) or memory")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.kind = kind
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    # deferred until the command line is read: --help answers without importing Optuna
    import optuna
    import structlog

    from bridge_worker import logs
    from bridge_worker.storage import open_storage
    from bridge_worker.storage_options import StorageOptions

    try:
        import grpc  # noqa: F401
    except ImportError:  # said before the log sink takes stderr, so it is written before exit
        sys.stderr.write("optuna-bridge proxy needs grpcio: pip install 'optuna-bridge[grpc]'\n")
        return 2
    ready_out = sys.stdout  # logs.configure points sys.stdout at the log sink (stderr)
    logs.configure(args.log_level)
    log = structlog.get_logger("bridge_worker.proxy")

    try:
        storage = optuna.storages.get_storage(open_storage(StorageOptions(args.storage)))
    except Exception as exc:
        log.error("storage_unavailable", storage=args.kind, error=f"{type(exc).__name__}: {exc}")
        return 1
    server = _grpc_server(storage, args.threads)
    try:
        port = server.add_insecure_port(f"{args.host}:{args.port}")
    except RuntimeError as exc:  # grpcio: "Failed to bind to address"
        log.error("cannot_listen", host=args.host, port=args.port, error=str(exc))
        return 1
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    server.start()
    ready = {"proxy": "ready", "host": args.host, "port": port, "storage": args.kind,
             "pid": os.getpid()}
    ready_out.write(json.dumps(ready, separators=(",", ":")) + "\n")  # the proxy's own stdout
    ready_out.flush()
    log.info("proxy_listening", host=args.host, port=port, storage=args.kind)
    stopped.wait()
    server.stop(STOP_GRACE_S).wait()
    log.info("stopped")
    return 0
