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
    parser.add_argument(
        "--max-reply-bytes", type=int, metavar="N",
        help="a larger reply is answered with limit_exceeded saying how to get the data in "
        "parts (default: --max-frame-bytes)",
    )
    from bridge_worker.limits import HARD_BOUNDS, NAMES, Limits

    defaults = Limits()
    with_own_flag = ("max_frame_bytes", "max_reply_bytes")  # their flags are above
    for name in (n for n in NAMES if n not in with_own_flag):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
            metavar="N", help=f"limit (default {getattr(defaults, name)})",
        )
    parser.add_argument(
        "--frame-budget", type=float, metavar="SECONDS",
        help="end the worker (exit status 75) when one frame runs longer than this, after "
        "logging the frame; its supervisor restarts it (default: no budget)",
    )
    parser.add_argument(
        "--jsonrpc", choices=("default", "strict"), default="default",
        help="strict: JSON-RPC 2.0 to the letter for generic client libraries - no ready frame, "
        'no error notifications (failed notifications are logged), "jsonrpc":"2.0" required',
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, default=None,
        help="stderr log level (default: info, or warning when stdin is a terminal, so a person "
        "typing frames sees replies, not logs)",
    )
    parser.add_argument("--version", action="version", version=f"optuna-bridge {__version__}")
    args = parser.parse_args(argv)
    if args.log_level is None:
        args.log_level = "warning" if _stdin_is_terminal() else "info"
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
    if args.frame_budget is not None and not 0 < args.frame_budget <= 86_400:
        parser.error("--frame-budget must be more than 0 and at most 86400 seconds")
    if not 0 <= args.spin_us <= 100_000:
        parser.error("--spin-us must be between 0 and 100000")
    if args.max_reply_bytes is None:
        args.max_reply_bytes = args.max_frame_bytes
    args.limits = Limits(**{name: getattr(args, name) for name in NAMES})
    for name in NAMES:
        value = getattr(args.limits, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
        if value > HARD_BOUNDS.get(name, value):
            parser.error(f"--{name.replace('_', '-')} cannot exceed the protocol's bound "
                         f"{HARD_BOUNDS[name]}")
    return args


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):  # no stdin at all
        return False


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["proxy"]:  # optuna-bridge proxy --storage URL --host H --port P
        from bridge_worker.proxy import main as proxy_main

        return proxy_main(argv[1:])
    from bridge_worker.server import protect_stdout

    parent_pid = os.getppid()  # read first: the parent may die while we import
    args = parse_args(argv)
    proto_fd = protect_stdout()

    import optuna
    import structlog

    from bridge_worker import logs, schema
    from bridge_worker.dispatch import Dispatcher, build_methods
    from bridge_worker.errors import BridgeError
    from bridge_worker.frame_budget import FrameWatch, frame_head, frame_summary
    from bridge_worker.framing import Frame
    from bridge_worker.handlers import ALL
    from bridge_worker.parent_watch import watch_parent
    from bridge_worker.registry import StudyRegistry
    from bridge_worker.rpc import Endpoint
    from bridge_worker.server import EXIT_FRAME_BUDGET, serve
    from bridge_worker.storage import StorageHandle

    sink = logs.configure(args.log_level)
    log = structlog.get_logger("bridge_worker")
    watch_parent(parent_pid)

    def frame_overran(elapsed: float, frame: Frame) -> None:
        log.error(
            "frame_budget_exceeded", budget_s=args.frame_budget, elapsed_s=round(elapsed, 3),
            **frame_summary(frame),
        )
        log.debug("frame_budget_exceeded_frame", frame_head=frame_head(frame))
        sink.drain(1.0)
        os._exit(EXIT_FRAME_BUDGET)  # the stuck call cannot be interrupted from inside

    watch = FrameWatch(args.frame_budget, frame_overran)
    storage = StorageHandle(args.storage_options)
    storage_kind = storage.kind
    registry = StudyRegistry(storage, args.limits)
    try:
        registry.open()
    except BridgeError as exc:  # answered as storage_error until the storage is reachable
        log.warning("storage_unavailable", storage=storage_kind, error=exc.message)
    strict = args.jsonrpc == "strict"
    endpoint = Endpoint(Dispatcher(registry, build_methods(ALL)), strict=strict)
    ready = schema.Notification(
        method="ready",
        params=schema.ReadyParams(
            protocol=schema.PROTOCOL_VERSION,
            worker=__version__,
            optuna=optuna.__version__,
            pid=os.getpid(),
            storage=storage_kind,
            framing=args.framing,
            max_frame_bytes=args.limits.max_frame_bytes,
        ),
    )
    log.info(
        "started", storage=storage_kind, framing=args.framing, jsonrpc=args.jsonrpc,
        pid=os.getpid(),
    )
    try:
        return serve(
            endpoint,
            b"" if strict else schema.encoder.encode(ready),
            args.framing,
            args.limits.max_frame_bytes,
            in_fd=sys.stdin.fileno(),
            out_fd=proto_fd,
            spin_s=args.spin_us / 1e6,
            watch=watch,
        )
    finally:
        registry.close()
        if sink.dropped_total:
            log.warning("log_lines_dropped_total", count=sink.dropped_total)
        sink.drain(0.5)


if __name__ == "__main__":
    sys.exit(main())
