"""Command line: ``optuna-bridge [--storage URL] [--framing line|packet4] ...``, or
``optuna-bridge proxy --storage URL --host H --port P`` for the gRPC storage proxy, or
``optuna-bridge schema`` to print the protocol's JSON Schema shipped with this worker.

The flags are read by :mod:`bridge_worker.config`; the worker is assembled by
:func:`bridge_worker.wiring.build_endpoint` and served by :mod:`bridge_worker.io.server`.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

from bridge_worker import __version__
from bridge_worker.config import parse_args

__all__ = ["main", "parse_args"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["proxy"]:  # optuna-bridge proxy --storage URL --host H --port P
        from bridge_worker.proxy import main as proxy_main  # only the proxy needs grpc

        return proxy_main(argv[1:])
    if argv[:1] == ["schema"]:
        return _print_schema(argv[1:])
    parent_pid = os.getppid()  # read first: the parent may die while we import
    # Start-up allocates ~50k long-lived objects and frees almost none: the ~100 collections the
    # imports would trigger find nothing (20-80 ms, a tenth of the start). Off until the worker
    # is assembled, then those objects are frozen out of every later full collection.
    gc.disable()
    config = parse_args(argv)
    # Deferred until the command line is read: --help and a bad flag answer without importing
    # Optuna, numpy and the storage drivers (hundreds of milliseconds).
    from bridge_worker.storage.redis_import import import_optuna_without_redis

    import_optuna_without_redis()
    from bridge_worker.io.server import protect_stdout

    proto_fd = protect_stdout()

    import optuna
    import structlog

    from bridge_worker.io import logs
    from bridge_worker.io.frame_budget import FrameWatch, frame_head, frame_summary
    from bridge_worker.io.parent_watch import EXIT_PARENT_GONE, watch_parent
    from bridge_worker.io.server import (
        EXIT_FRAME_BUDGET,
        GATHER_MAX_S,
        GROUP_COMMIT_MAX_S,
        serve,
    )
    from bridge_worker.storage.handle import StorageHandle
    from bridge_worker.wire import schema
    from bridge_worker.wire.errors import BridgeError
    from bridge_worker.wire.framing import Frame
    from bridge_worker.wiring import build_endpoint

    sink = logs.configure(config.log_level)
    log = structlog.get_logger("bridge_worker")

    def parent_gone() -> None:  # its log line reaches stderr before the exit, never lost
        sink.drain(1.0)
        os._exit(EXIT_PARENT_GONE)

    watch_parent(parent_pid, on_gone=parent_gone)

    def frame_overran(elapsed: float, frame: Frame) -> None:
        log.error(
            "frame_budget_exceeded",
            budget_s=config.frame_budget,
            elapsed_s=round(elapsed, 3),
            **frame_summary(frame),
        )
        log.debug("frame_budget_exceeded_frame", frame_head=frame_head(frame))
        sink.drain(1.0)
        os._exit(EXIT_FRAME_BUDGET)  # the stuck call cannot be interrupted from inside

    # Without --frame-budget nothing watches frames: no per-frame work for a feature that is off.
    watch = None if config.frame_budget is None else FrameWatch(config.frame_budget, frame_overran)
    storage = StorageHandle(config.storage)
    storage_kind = storage.kind
    endpoint = build_endpoint(
        storage,
        config.limits,
        strict=config.strict,
        snapshot_key=config.snapshot_key,
        artifacts=config.artifacts,
    )
    registry = endpoint.dispatcher.registry
    try:
        registry.open()
    except BridgeError as exc:  # answered as storage_error until the storage is reachable
        log.warning("storage_unavailable", storage=storage_kind, error=exc.message)
    ready = schema.Notification(
        method="ready",
        params=schema.ReadyParams(
            protocol=schema.PROTOCOL_VERSION,
            worker=__version__,
            optuna=optuna.__version__,
            pid=os.getpid(),
            storage=storage_kind,
            framing=config.framing,
            max_frame_bytes=config.limits.max_frame_bytes,
        ),
    )
    log.info(
        "started",
        storage=storage_kind,
        framing=config.framing,
        jsonrpc=config.jsonrpc,
        pid=os.getpid(),
    )
    gc.freeze()
    gc.enable()
    try:
        return serve(
            endpoint,
            b"" if config.strict else schema.encoder.encode(ready),
            config.framing,
            config.limits.max_frame_bytes,
            in_fd=sys.stdin.fileno(),
            out_fd=proto_fd,
            spin_s=config.spin_us / 1e6,
            watch=watch,
            # Replies of frames read together share a write where that loses nothing: memory
            # (dies with the worker) or a storage that syncs the group before the replies.
            gather_s=(
                GROUP_COMMIT_MAX_S
                if storage.group_commits
                else GATHER_MAX_S
                if not storage.backend.durable
                else 0.0
            ),
            commit=storage.commit if storage.group_commits else None,
        )
    finally:
        registry.close()
        if sink.dropped_total:
            log.warning("log_lines_dropped_total", count=sink.dropped_total)
        sink.drain(0.5)


def _print_schema(argv: Sequence[str]) -> int:
    """``optuna-bridge schema``: the JSON Schema document on stdout (no worker is started)."""
    if argv:
        print(f"optuna-bridge schema: takes no arguments, got {' '.join(argv)}", file=sys.stderr)
        return 2
    from bridge_worker.wire.distribution import schema_bytes

    sys.stdout.buffer.write(schema_bytes())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
