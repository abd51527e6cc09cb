"""``redis://host:port/db`` (and ``rediss://``): Optuna's journal on Redis, with the journal
backend's heartbeats and identity reads; each write is durable as Redis makes it (no group
commit)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from bridge_worker.storage.journal import JournalBackend

if TYPE_CHECKING:
    from bridge_worker.storage.options import StorageOptions


class RedisBackend(JournalBackend):
    name = "redis"
    schemes = ("redis", "rediss")

    def check(self, options: StorageOptions) -> None:
        if importlib.util.find_spec("redis") is None:
            raise ValueError(
                "this storage needs the 'redis' package: pip install 'optuna-bridge[redis]'"
            )

    def group_commits(self, url: str) -> bool:
        return False
