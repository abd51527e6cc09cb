"""Methods about the worker itself rather than any study."""

from __future__ import annotations

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.schema import PingParams, PingResult, ShutdownParams, ShutdownResult


@rpc_method("ping")
def ping(registry: StudyRegistry, params: PingParams) -> PingResult:
    return PingResult()


@rpc_method("shutdown", ends_session=True)
def shutdown(registry: StudyRegistry, params: ShutdownParams) -> ShutdownResult:
    """Replies first; the I/O loop exits 0 once the reply is written."""
    return ShutdownResult()
