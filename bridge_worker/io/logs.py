"""Structured logs: JSON lines on stderr, configured once at start-up.

Everything that logs ends up here as JSON — our own structlog loggers, Optuna's stdlib logger and
Python warnings — through one renderer, so every line on stderr has the same compact style and
stdout stays protocol-only. Below the chosen level a structlog call is a no-op method, so debug
logging on the hot path costs nothing when off.

What is logged never includes a frame: events name the method, error kind and field; tracebacks
(``internal_error``) are rendered without local variables, which would hold the raw frame.

Every line, ours or Python's own ``sys.stderr``, goes through one
:class:`~bridge_worker.io.log_sink.LogSink`, which never blocks and never raises, whatever the
parent does with stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import optuna
import orjson
import structlog

from bridge_worker.io.log_sink import LogSink, SinkText

_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
"""``dict_tracebacks`` without locals: a frame's bytes are a local variable of the code that
answers it, and logs must never carry request data."""


def _dumps_text(obj: Any, **kw: Any) -> str:
    """orjson's compact JSON as text, for the stdlib handler (whose formatter returns ``str``)."""
    return orjson.dumps(obj, **kw).decode()


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
        processors=[*shared, _tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(stream.buffer),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _tracebacks,
                structlog.processors.JSONRenderer(serializer=_dumps_text),
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
