"""``importance``: which parameters mattered, by Optuna's default importance evaluator."""

from __future__ import annotations

import warnings

import optuna
from msgspec import UNSET
from optuna.trial import TrialState

from bridge_worker.dispatch import rpc_method
from bridge_worker.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema import ImportanceParams, ImportanceResult

MIN_COMPLETED = 2
"""Fewer completed trials than this cannot rank anything."""


@rpc_method("importance")
def importance(registry: StudyRegistry, params: ImportanceParams) -> ImportanceResult:
    entry = registry.get(params.study)
    study = entry.study
    n_objectives = len(study.directions)
    objective = 0 if params.objective is UNSET else params.objective
    if params.objective is UNSET and n_objectives > 1:
        raise invalid_params("$.params.objective", f"the study has {n_objectives} objectives: "
                             "say which one (0-based)")
    if objective >= n_objectives:
        raise invalid_params("$.params.objective", f"the study has {n_objectives} objective(s)")
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < MIN_COMPLETED:
        raise BridgeError(
            ErrorKind.NO_COMPLETED_TRIALS,
            f"importance needs at least {MIN_COMPLETED} completed trials; "
            f"study {entry.name!r} has {len(completed)}",
            study=entry.name, n_completed=len(completed),
        )
    names = None if params.params is UNSET else list(params.params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            found = optuna.importance.get_param_importances(
                study,
                params=names,
                target=None if n_objectives == 1 else (lambda t: t.values[objective]),
            )
    except (ValueError, RuntimeError) as exc:
        raise invalid_params("$.params.params", str(exc)) from None
    return ImportanceResult(importances={name: float(v) for name, v in found.items()})
