"""``report``: intermediate values of a running trial, and whether the pruner would stop it."""

from __future__ import annotations

import math

from optuna.trial import TrialState

from bridge_worker import leases
from bridge_worker.dispatch import rpc_method
from bridge_worker.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.handlers.trials import find_trial, trial_finished
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema import ReportParams, ReportResult


@rpc_method("report")
def report(registry: StudyRegistry, params: ReportParams) -> ReportResult:
    """Store the value at ``step`` (as ``Trial.report``) and ask the study's pruner
    (as ``Trial.should_prune``). The parent then tells ``"state": "pruned"`` if told to.

    A step reported twice keeps its first value, as in Optuna.
    """
    entry = registry.get(params.study)
    study = entry.study
    if len(study.directions) > 1:
        raise BridgeError(
            ErrorKind.INVALID_PARAMS,
            "report and pruning work on single-objective studies only (as in Optuna)",
            field="$.params.study", study=entry.name,
        )
    if not math.isfinite(params.value):
        raise invalid_params("$.params.value", "intermediate values must be finite")
    trial = find_trial(entry, params.number)
    if trial.state != TrialState.RUNNING:
        if trial.state.is_finished():
            raise trial_finished(entry, params.number, trial.state)
        raise BridgeError(
            ErrorKind.TRIAL_NOT_FOUND,
            f"trial {params.number} of study {entry.name!r} is enqueued but was never asked",
            study=entry.name, number=params.number,
        )
    if params.step not in trial.intermediate_values:
        study._storage.set_trial_intermediate_value(trial._trial_id, params.step, params.value)
        trial = study._storage.get_trial(trial._trial_id)
    leases.touch(study._storage, trial)  # any report is a sign of life: renew a lease
    return ReportResult(should_prune=bool(study.pruner.prune(study, trial)))
