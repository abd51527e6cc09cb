"""The command line, read and checked into a frozen :class:`WorkerConfig`.

Everything a frame may not choose (storage, file paths, limits) is chosen here by the operator.
This module imports neither Optuna nor numpy (``tests/io/test_config.py`` checks it), so
``optuna-bridge --help`` and a bad flag answer at once, before the worker's heavy imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge_worker.storage.backends import backend_for
from bridge_worker.storage.options import StorageOptions, check_options
from bridge_worker.storage.proxy_auth import read_pem, read_token
from bridge_worker.studies.artifact_options import DEFAULT_UPLOAD_TIMEOUT, ArtifactOptions
from bridge_worker.wire.framing import DEFAULT_MAX_FRAME_BYTES
from bridge_worker.wire.limits import HARD_BOUNDS, NAMES, Limits

SQL_MAX_ADD_VALUES = 200
"""``--max-add-values`` on SQL storages: ``add_trials`` writes each trial in its own transactions
(about 30 ms per trial and 10 ms per value on SQLite here), so 200 values stay within seconds."""

LEVELS = ("debug", "info", "warning", "error")
"""The stderr log levels an operator may choose."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What the operator chose for one worker."""

    storage: StorageOptions
    limits: Limits
    framing: Literal["line", "packet4"] = "line"
    spin_us: int = 200
    """Microseconds to poll for the next frame before sleeping."""
    frame_budget: float | None = None
    """Seconds one frame may run before the worker ends itself (exit status 75)."""
    jsonrpc: Literal["default", "strict"] = "default"
    log_level: str = "info"
    snapshot_key: bytes | None = field(default=None, repr=False)
    """The operator's key: exports are signed with it, imports must be (``--snapshot-key``)."""
    artifacts: ArtifactOptions = field(default_factory=ArtifactOptions)

    @property
    def strict(self) -> bool:
        return self.jsonrpc == "strict"


def parse_args(argv: Sequence[str] | None) -> WorkerConfig:
    """The command line as a checked :class:`WorkerConfig` (argparse exits with status 2 and
    a message on a bad flag)."""
    parser = argparse.ArgumentParser(
        prog="optuna-bridge",
        description="Run Optuna over stdin/stdout: one JSON-RPC frame per line (or packet4).",
        epilog="subcommand: optuna-bridge proxy --storage URL [--host H] [--port P] serves one "
        "storage to many workers over gRPC (workers use --storage grpc://H:P); "
        "see optuna-bridge proxy --help",
    )
    parser.add_argument(
        "--storage",
        default="memory",
        help="where studies live: memory (default), sqlite:///path.db, journal:///path.log, "
        "postgresql+psycopg2://user@host/db, grpc://host:port (optuna-bridge proxy), ...",
    )
    parser.add_argument(
        "--heartbeat",
        type=int,
        metavar="SECONDS",
        help="record heartbeats of running trials; trials of a dead worker are failed after the "
        "grace period (durable storages only)",
    )
    parser.add_argument(
        "--grace-period",
        type=int,
        metavar="SECONDS",
        help="seconds without heartbeat before a running trial is failed (default: 2 x heartbeat)",
    )
    parser.add_argument(
        "--retry-failed",
        type=int,
        metavar="N",
        help="ask the parameters of a trial failed by the heartbeat check again, at most N times",
    )
    parser.add_argument(
        "--proxy-token-file",
        metavar="FILE",
        help="grpc:// storage: the proxy's shared token (optuna-bridge proxy --token-file)",
    )
    parser.add_argument(
        "--proxy-tls-ca",
        metavar="FILE",
        help="grpc:// storage: talk TLS to the proxy and check its certificate against these "
        "CA certificates (PEM)",
    )
    parser.add_argument(
        "--proxy-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="grpc:// storage: a call the proxy has not answered after this long is a "
        "storage_error (default 10)",
    )
    parser.add_argument("--framing", choices=("line", "packet4"), default="line")
    parser.add_argument(
        "--spin-us",
        type=int,
        default=200,
        metavar="US",
        help="poll for the next frame this long before sleeping (lower latency, more CPU)",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=DEFAULT_MAX_FRAME_BYTES,
        metavar="N",
        help="longer frames get a frame_too_large error (default: 16 MiB)",
    )
    parser.add_argument(
        "--max-reply-bytes",
        type=int,
        metavar="N",
        help="a larger reply is answered with limit_exceeded saying how to get the data in "
        "parts (default: --max-frame-bytes)",
    )
    defaults = Limits()
    with_own_flag = ("max_frame_bytes", "max_reply_bytes", "max_add_values")  # see above/below
    parser.add_argument(
        "--max-add-values",
        type=int,
        default=None,
        metavar="N",
        help=f"limit (default {defaults.max_add_values}, or {SQL_MAX_ADD_VALUES} on SQL storages "
        "and the gRPC proxy, where each value is a transaction's worth of writes)",
    )
    for name in (n for n in NAMES if n not in with_own_flag):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=getattr(defaults, name),
            metavar="N",
            help=f"limit (default {getattr(defaults, name)})",
        )
    parser.add_argument(
        "--frame-budget",
        type=float,
        metavar="SECONDS",
        help="end the worker (exit status 75) when one frame runs longer than this, after "
        "logging the frame; its supervisor restarts it (default: no budget)",
    )
    parser.add_argument(
        "--snapshot-key",
        metavar="FILE",
        help="sign exported snapshots with this secret (HMAC-SHA256) and import only snapshots "
        "signed with it",
    )
    parser.add_argument(
        "--jsonrpc",
        choices=("default", "strict"),
        default="default",
        help="strict: JSON-RPC 2.0 to the letter for generic client libraries - no ready frame, "
        'no error notifications (failed notifications are logged), "jsonrpc":"2.0" required',
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=None,
        help="stderr log level (default: info, or warning when stdin is a terminal, so a person "
        "typing frames sees replies, not logs)",
    )
    parser.add_argument(
        "--artifacts",
        metavar="DIR",
        help="enable artifact_put/artifacts/artifact_get, storing files in DIR (Optuna's "
        "FileSystemArtifactStore; give optuna-dashboard the same --artifact-dir)",
    )
    parser.add_argument(
        "--artifact-upload-timeout",
        type=float,
        default=DEFAULT_UPLOAD_TIMEOUT,
        metavar="SECONDS",
        help="discard an unfinished upload after this long without a chunk "
        f"(default {DEFAULT_UPLOAD_TIMEOUT:g})",
    )
    parser.add_argument(
        "--version", action=_PrintVersions, help="print the worker, protocol and Optuna versions"
    )
    args = parser.parse_args(argv)
    if args.log_level is None:
        args.log_level = "warning" if _stdin_is_terminal() else "info"
    try:
        storage = StorageOptions(
            url=args.storage,
            heartbeat=args.heartbeat,
            grace_period=args.grace_period,
            retry_failed=args.retry_failed,
            proxy_token=None
            if args.proxy_token_file is None
            else read_token(args.proxy_token_file),
            proxy_tls_ca=None
            if args.proxy_tls_ca is None
            else read_pem(args.proxy_tls_ca, "CA certificate"),
            proxy_timeout=args.proxy_timeout,
        )
        check_options(storage)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        snapshot_key = (
            None
            if args.snapshot_key is None
            else read_token(args.snapshot_key, "snapshot key").encode()
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.frame_budget is not None and not 0 < args.frame_budget <= 86_400:
        parser.error("--frame-budget must be more than 0 and at most 86400 seconds")
    if not 0 <= args.spin_us <= 100_000:
        parser.error("--spin-us must be between 0 and 100000")
    if args.max_reply_bytes is None:
        args.max_reply_bytes = args.max_frame_bytes
    if args.max_add_values is None:
        sql = backend_for(args.storage).sql
        args.max_add_values = SQL_MAX_ADD_VALUES if sql else Limits().max_add_values
    limits = Limits(**{name: getattr(args, name) for name in NAMES})
    for name in NAMES:
        value = getattr(limits, name)
        if value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
        if value > HARD_BOUNDS.get(name, value):
            parser.error(
                f"--{name.replace('_', '-')} cannot exceed the protocol's bound {HARD_BOUNDS[name]}"
            )
    return WorkerConfig(
        storage=storage,
        limits=limits,
        framing=args.framing,
        spin_us=args.spin_us,
        frame_budget=args.frame_budget,
        jsonrpc=args.jsonrpc,
        log_level=args.log_level,
        snapshot_key=snapshot_key,
        artifacts=ArtifactOptions(
            Path(args.artifacts) if args.artifacts else None, args.artifact_upload_timeout
        ),
    )


class _PrintVersions(argparse.Action):
    """``--version``: worker, protocol and Optuna versions, computed only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from bridge_worker.wire.distribution import version_text

        # Only before any worker exists (the process exits here), like `optuna-bridge schema`:
        # stdout carries no protocol yet.
        sys.stdout.write(version_text() + "\n")
        parser.exit()


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):  # no stdin at all
        return False
