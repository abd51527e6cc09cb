"""``artifact_put``, ``artifacts``, ``artifact_get``: files per trial and per study
(:mod:`bridge_worker.studies.artifacts`), enabled by the operator with ``--artifacts DIR``."""

from __future__ import annotations

import base64
import binascii

from msgspec import UNSET

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import invalid_params
from bridge_worker.wire.schema import (
    ArtifactGetParams,
    ArtifactGetResult,
    ArtifactInfo,
    ArtifactPutParams,
    ArtifactPutResult,
    ArtifactsParams,
    ArtifactsResult,
)

_REPLY_OVERHEAD = 1024
"""Bytes of a reply besides its base64 data (envelope, field names, numbers)."""


@rpc_method("artifact_put")
def artifact_put(registry: StudyRegistry, params: ArtifactPutParams) -> ArtifactPutResult:
    """One chunk of an upload; the final one stores the artifact if its sha256 matches."""
    keeper = registry.artifacts
    keeper.directory  # noqa: B018 - not_configured before anything else
    if params.final and params.sha256 is UNSET:
        raise invalid_params("$.params.sha256", "the final chunk needs the file's sha256")
    try:
        chunk = base64.b64decode(params.data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_params("$.params.data", "data must be base64") from None
    entry = registry.get(params.study)
    # Optuna stores a trial's artifacts in its system attrs, which only a running trial takes
    owner = None if params.number is UNSET else entry.open_trial(params.number)
    size, artifact_id, sha256 = keeper.put(
        entry.storage,
        entry.study_id,
        owner,
        params.name,
        chunk,
        params.offset,
        params.final,
        None if params.sha256 is UNSET else params.sha256,
        params.content_type,
        registry.limits.max_artifact_bytes,
    )
    return ArtifactPutResult(size=size, artifact_id=artifact_id, sha256=sha256)


@rpc_method("artifacts")
def artifacts(registry: StudyRegistry, params: ArtifactsParams) -> ArtifactsResult:
    keeper = registry.artifacts
    keeper.directory  # noqa: B018
    entry = registry.get(params.study)
    trials = None if params.number is UNSET else [entry.trial(params.number)]
    return ArtifactsResult(
        artifacts=[
            ArtifactInfo(
                artifact_id=a.artifact_id,
                name=a.name,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                number=a.number,
            )
            for a in keeper.listed(entry.study, trials)
        ]
    )


@rpc_method("artifact_get")
def artifact_get(registry: StudyRegistry, params: ArtifactGetParams) -> ArtifactGetResult:
    """Part of an artifact of the study, at most what fits in one reply."""
    keeper = registry.artifacts
    keeper.directory  # noqa: B018
    entry = registry.get(params.study)
    found = [a for a in keeper.listed(entry.study, None) if a.artifact_id == params.artifact_id]
    if not found:
        raise invalid_params(
            "$.params.artifact_id", f"study {entry.name!r} has no artifact {params.artifact_id!r}"
        )
    stored = found[0]
    if params.offset > stored.size:
        raise invalid_params("$.params.offset", f"past the end ({stored.size} bytes)")
    fits = max((registry.limits.max_reply_bytes - _REPLY_OVERHEAD) * 3 // 4, 1)
    limit = fits if params.limit is UNSET else min(params.limit, fits)
    data, eof = keeper.read(stored, params.offset, limit)
    return ArtifactGetResult(
        data=base64.b64encode(data).decode(), offset=params.offset, size=stored.size, eof=eof
    )
