"""``report``: intermediate values of a running trial, and whether the pruner would stop it."""

from __future__ import annotations

import math

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.wire.schema import ReportParams, ReportResult
from bridge_worker.wire.storage_bounds import check_step


@rpc_method("report")
def report(registry: StudyRegistry, params: ReportParams) -> ReportResult:
    """Store the value at ``step`` (as ``Trial.report``) and ask the study's pruner
    (as ``Trial.should_prune``). The parent then tells ``"state": "pruned"`` if told to.

    A step reported twice keeps its first value, as in Optuna.
    """
    entry = registry.trial_study(params.study, params.number)
    if entry.n_objectives > 1:
        raise BridgeError(
            ErrorKind.INVALID_PARAMS,
            "report and pruning work on single-objective studies only (as in Optuna)",
            field="$.params.study",
            study=entry.name,
        )
    if not math.isfinite(params.value):
        raise invalid_params("$.params.value", "intermediate values must be finite")
    check_step(params.step, registry.max_step, "$.params.step")
    trial = entry.open_trial(params.number)
    return ReportResult(should_prune=entry.report(trial, params.step, params.value))
