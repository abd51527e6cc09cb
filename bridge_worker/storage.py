"""The operator's ``--storage`` URL to an Optuna storage. Frames never name a storage."""

from __future__ import annotations

from optuna.storages import BaseStorage, InMemoryStorage


def open_storage(url: str) -> tuple[BaseStorage, str]:
    """The storage and its kind for the ``ready`` frame (a kind, never a URL or a password)."""
    if url == "memory":
        return InMemoryStorage(), "memory"
    raise SystemExit(f"optuna-bridge: unsupported --storage {url!r}")
