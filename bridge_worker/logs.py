"""Structured logs: JSON lines on stderr, configured once at start-up.

Everything that logs ends up here as JSON — our own structlog loggers, Optuna's stdlib logger and
Python warnings — so stderr is machine-readable and stdout stays protocol-only. Below the chosen
level a structlog call is a no-op method, so debug logging on the hot path costs nothing when off.

Every line, ours or Python's own ``sys.stderr``, goes through one
:class:`~bridge_worker.log_sink.LogSink`, which never blocks and never raises, whatever the parent
does with stderr.
"""

from __future__ import annotations

import logging
import sys

import optuna
import orjson
import structlog

from bridge_worker.log_sink import LogSink, SinkText

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str) -> LogSink:
    """Set up logging once; the returned sink is drained (briefly) at exit."""
    sink = LogSink(2)
    stream = SinkText(sink)
    sys.stdout = sys.stderr = stream  # fd 1 already points at fd 2 (server.protect_stdout)
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
        logger_factory=structlog.BytesLoggerFactory(stream.buffer),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
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
    return sink
