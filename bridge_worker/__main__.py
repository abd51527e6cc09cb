"""Command line: ``optuna-bridge [--storage URL] [--framing line|packet4] ...``, or
``optuna-bridge proxy --storage URL --host H --port P`` for the gRPC storage proxy.

Everything a frame may not choose (storage, file paths, limits) is chosen here by the operator.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bridge_worker import __version__


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from bridge_worker.framing import DEFAULT_MAX_FRAME_BYTES
    from bridge_worker.logs import LEVELS

    parser = argparse.ArgumentParser(
        prog="optuna-bridge",
        description="Run Optuna over stdin/stdout: one JSON-RPC frame per line (or packet4).",
    )
    parser.add_argument(
        "--storage", default="memory",
        help="where studies live: memory (default), sqlite:///path.db, journal:///path.log, "
        "postgresql+psycopg2://user@host/db, grpc://host:port (optuna-bridge proxy), ...",
    )
    parser.add_argument(
        "--heartbeat", type=int, metavar="SECONDS",
        help="record heartbeats of running trials; trials of a dead worker are failed after the "
        "grace period (durable storages only)",
    )
    parser.add_argument(
        "--grace-period", type=int, metavar="SECONDS",
        help="seconds without heartbeat before a running trial is failed (default: 2 x heartbeat)",
    )
    parser.add_argument(
        "--retry-failed", type=int, metavar="N",
        help="ask the parameters of a trial failed by the heartbeat check again, at most N times",
    )
    parser.add_argument("--framing", choices=("line", "packet4"), default="line")
    parser.add_argument(
        "--spin-us", type=int, default=200, metavar="US",
        help="poll for the next frame this long before sleeping (lower latency, more CPU)",
    )
    parser.add_argument(
        "--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES, metavar="N",
        help="longer frames get a frame_too_large error (default: 16 MiB)",
    )
    from bridge_worker.limits import HARD_BOUNDS, NAMES, Limits

    defaults = Limits()
    for name in (n for n in NAMES if n != "max_frame_bytes"):  # that one has its flag above
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
            metavar="N", help=f"limit (default {getattr(defaults, name)})",
        )
    parser.add_argument("--log-level", choices=LEVELS, default="info")
    parser.add_argument("--version", action="version", version=f"optuna-bridge {__version__}")
    args = parser.parse_args(argv)
    from bridge_worker.storage import StorageOptions, check_options

    args.storage_options = StorageOptions(
        url=args.storage,
        heartbeat=args.heartbeat,
        grace_period=args.grace_period,
        retry_failed=args.retry_failed,
    )
    try:
        check_options(args.storage_options)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.spin_us <= 100_000:
        parser.error("--spin-us must be between 0 and 100000")
    args.limits = Limits(**{name: getattr(args, name) for name in NAMES})
    for name in NAMES:
        value = getattr(args.limits, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
        if value > HARD_BOUNDS.get(name, value):
            parser.error(f"--{name.replace('_', '-')} cannot exceed the protocol's bound "
                         f"{HARD_BOUNDS[name]}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["proxy"]:  # optuna-bridge proxy --storage URL --host H --port P
        from bridge_worker.proxy import main as proxy_main

        return proxy_main(argv[1:])
    from bridge_worker.server import protect_stdout

    args = parse_args(argv)
    proto_fd = protect_stdout()

    import optuna
    import structlog

    from bridge_worker import logs, schema
    from bridge_worker.dispatch import Dispatcher, build_methods
    from bridge_worker.errors import BridgeError
    from bridge_worker.handlers import ALL
    from bridge_worker.registry import StudyRegistry
    from bridge_worker.rpc import Endpoint
    from bridge_worker.server import serve
    from bridge_worker.storage import StorageHandle

    logs.configure(args.log_level)
    log = structlog.get_logger("bridge_worker")
    storage = StorageHandle(args.storage_options)
    storage_kind = storage.kind
    try:
        storage.get()
    except BridgeError as exc:  # answered as storage_error until the storage is reachable
        log.warning("storage_unavailable", storage=storage_kind, error=exc.message)
    registry = StudyRegistry(storage, args.limits)
    endpoint = Endpoint(Dispatcher(registry, build_methods(ALL)))
    ready = schema.Notification(
        method="ready",
        params=schema.ReadyParams(
            protocol=schema.PROTOCOL_VERSION,
            worker=__version__,
            optuna=optuna.__version__,
            pid=os.getpid(),
            storage=storage_kind,
            framing=args.framing,
        ),
    )
    log.info("started", storage=storage_kind, framing=args.framing, pid=os.getpid())
    try:
        return serve(
            endpoint,
            schema.encoder.encode(ready),
            args.framing,
            args.limits.max_frame_bytes,
            in_fd=sys.stdin.fileno(),
            out_fd=proto_fd,
            spin_s=args.spin_us / 1e6,
        )
    finally:
        registry.close()


if __name__ == "__main__":
    sys.exit(main())
