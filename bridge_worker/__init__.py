"""optuna-bridge: run Optuna over stdin/stdout, one JSON frame per line.

``from bridge_worker import Worker`` gives the Python client (:mod:`bridge_worker.client`); it
is imported on first use only, so the worker's own start never loads the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge_worker.client import Worker, WorkerError

__version__ = "0.1.0"
__all__ = ["Worker", "WorkerError", "__version__"]

_CLIENT_NAMES = frozenset({"Worker", "WorkerError"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from bridge_worker import client  # deferred: the worker process never needs the client

        return getattr(client, name)
    raise AttributeError(f"module 'bridge_worker' has no attribute {name!r}")
