"""Structured logs: JSON lines on stderr, configured once at start-up.

Everything that logs ends up here as JSON — our own structlog loggers, Optuna's stdlib logger and
Python warnings — so stderr is machine-readable and stdout stays protocol-only. Below the chosen
level a structlog call is a no-op method, so debug logging on the hot path costs nothing when off.
"""

from __future__ import annotations

import logging
import sys

import optuna
import orjson
import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    structlog.configure(
        processors=[*shared, structlog.processors.dict_tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(sys.stderr.buffer),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
