"""The worker assembled: storage -> registry -> method table -> dispatcher -> endpoint.

The one place that wires these together, used by ``__main__``, the tests and the scripts, so an
in-process endpoint in a test is built exactly as the process builds its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bridge_worker.handlers import ALL
from bridge_worker.storage.handle import StorageHandle
from bridge_worker.storage.options import StorageOptions
from bridge_worker.studies.artifact_options import ArtifactOptions
from bridge_worker.studies.artifacts import ArtifactKeeper
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import Dispatcher, build_methods
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.rpc import Endpoint


def build_endpoint(
    storage: StorageHandle | StorageOptions | str | None = None,
    limits: Limits | None = None,
    *,
    strict: bool = False,
    snapshot_key: bytes | None = None,
    handlers: Iterable[Callable[..., Any]] = ALL,
    artifacts: ArtifactOptions | None = None,
) -> Endpoint:
    """An endpoint serving ``handlers`` (every method by default) over ``storage`` (a URL, the
    operator's options or an opened handle; in-memory by default) within ``limits``.

    The storage is opened lazily (at the first frame, or by the registry's ``open()``)."""
    if isinstance(storage, str):
        storage = StorageOptions(storage)
    limits = limits or Limits()
    registry = StudyRegistry(storage, limits)
    registry.snapshot_key = snapshot_key
    if artifacts is not None:
        registry.artifacts = ArtifactKeeper(artifacts)
    endpoint = Endpoint(Dispatcher(registry, build_methods(handlers)), limits, strict=strict)
    registry.should_stop = lambda: endpoint.should_stop()  # the server sets it on the endpoint
    return endpoint
