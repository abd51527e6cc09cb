"""Parent-held checkpoints: ``export`` a study as a snapshot, ``import`` one back.

A supervisor that keeps the last snapshot can rebuild a study in a fresh in-memory worker, or move
it into a durable storage; see :mod:`bridge_worker.studies.snapshot` for the format and its checks.
"""

from __future__ import annotations

from msgspec import UNSET, Raw

from bridge_worker.studies.import_limits import check_import_limits
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.snapshot import encode_snapshot, read_snapshot
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.schema import ExportParams, ExportResult, ImportParams, ImportResult


@rpc_method("export", reads_only=True)
def export(registry: StudyRegistry, params: ExportParams) -> ExportResult:
    body = registry.snapshot_body(registry.get(params.study))
    return ExportResult(snapshot=Raw(encode_snapshot(body, registry.snapshot_key)))


@rpc_method("import")
def import_(registry: StudyRegistry, params: ImportParams) -> ImportResult:
    body, trials = read_snapshot(bytes(params.snapshot), registry.snapshot_key)
    check_import_limits(body, registry.limits)
    name = body.study if params.study is UNSET else params.study
    entry = registry.restore(name, body, trials, params.overwrite)
    return ImportResult(study=entry.name, n_trials=len(trials))
