"""``memory`` (the default): Optuna's in-memory storage, private to this worker and gone with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge_worker.storage.backend import Backend, StagedSwap

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, InMemoryStorage

    from bridge_worker.storage.options import StorageOptions


class MemoryBackend(Backend):
    name = "memory"
    schemes = ("memory",)
    shared = False
    durable = False
    proxied = True
    no_heartbeats = "--heartbeat needs a durable storage (RDB or journal), not memory"

    def open(self, options: StorageOptions, stale_trial_callback: Any) -> BaseStorage:
        from optuna.storages import InMemoryStorage

        return InMemoryStorage()

    def swap_staged(self, storage: BaseStorage, swap: StagedSwap) -> bool:
        """A rename under the storage's lock (Optuna has no rename: its private tables)."""
        memory: InMemoryStorage = storage  # type: ignore[assignment]
        with memory._lock:
            if swap.current is not None:
                memory.delete_study(swap.current.study_id)
            info = memory._studies[swap.staging_id]
            del memory._study_name_to_id[info.name]
            info.name = swap.target
            memory._study_name_to_id[swap.target] = swap.staging_id
            info.system_attrs = {
                k: v for k, v in info.system_attrs.items() if k != swap.record_attr
            }
        return True
