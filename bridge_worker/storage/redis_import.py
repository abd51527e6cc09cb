"""Optuna imports ``redis``, when it is installed, as Optuna itself is imported (for its Redis
journal backend), and redis brings asyncio and ssl: a fifth of every worker's start-up CPU
(0.10 s of 0.50 s; three interleaved rounds of 10 starts each way, cgroup CPU time, on a loaded
2-core machine), paid by every worker though only ``redis://`` storages use it.

The worker imports Optuna with redis hidden (:func:`import_optuna_without_redis`); a ``redis://``
storage gets Optuna's Redis backend from :func:`journal_redis_backend`, which runs Optuna's
Redis module again once redis is really needed. The one place that knows how Optuna imports
redis: if an Optuna release changes it, ``tests/io/test_startup_imports.py`` or the ``redis://``
storage tests fail, here.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def import_optuna_without_redis() -> None:
    """``import optuna`` with ``redis`` unimportable meanwhile (Optuna records it as missing and
    defines its Redis backend without it); no-op when either is already imported."""
    if "optuna" in sys.modules or "redis" in sys.modules:
        return
    sys.modules["redis"] = None  # type: ignore[assignment]  # `import redis` raises ImportError
    try:
        import optuna  # noqa: F401
    finally:
        if sys.modules.get("redis", 0) is None:
            del sys.modules["redis"]


def journal_redis_backend() -> Any:
    """Optuna's ``JournalRedisBackend`` class, with redis imported: Optuna's Redis module is run
    again when it was first imported with redis hidden."""
    from optuna.storages.journal import _redis

    if not _redis._imports.is_successful():
        importlib.reload(_redis)
    return _redis.JournalRedisBackend
