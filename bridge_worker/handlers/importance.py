"""``importance``: which parameters mattered, by Optuna's default importance evaluator."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
from msgspec import UNSET
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.wire.schema import ImportanceParams, ImportanceResult

MIN_COMPLETED = 2
"""Fewer completed trials than this cannot rank anything."""


@rpc_method("importance", reads_only=True)
def importance(registry: StudyRegistry, params: ImportanceParams) -> ImportanceResult:
    """Optuna's ``get_param_importances`` with its default evaluator. For several objectives,
    without ``objective`` the evaluator ranks parameters for the Pareto front (as Optuna does);
    with it, for that one objective, in its own direction."""
    entry = registry.get(params.study)
    study = entry.study
    n_objectives = len(study.directions)
    target = None
    if params.objective is not UNSET:
        index = params.objective
        if index >= n_objectives:
            raise invalid_params("$.params.objective", f"the study has {n_objectives} objective(s)")
        sign = -1.0 if study.directions[index] == StudyDirection.MAXIMIZE else 1.0
        target = _objective_target(index, sign)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < MIN_COMPLETED:
        raise BridgeError(
            ErrorKind.NO_COMPLETED_TRIALS,
            f"importance needs at least {MIN_COMPLETED} completed trials; "
            f"study {entry.name!r} has {len(completed)}",
            study=entry.name,
            n_completed=len(completed),
        )
    names = None if params.params is UNSET else list(params.params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # "computes importances to achieve low target values": the sign above sees to that
            warnings.filterwarnings("ignore", message=".*to achieve low `target` values")
            found = optuna.importance.get_param_importances(study, params=names, target=target)
    except (ValueError, RuntimeError) as exc:
        raise invalid_params("$.params.params", str(exc)) from None
    return ImportanceResult(importances={name: float(v) for name, v in found.items()})


def _objective_target(index: int, sign: float) -> Callable[[FrozenTrial], float]:
    def target(trial: FrozenTrial) -> float:
        return sign * float(trial.values[index])

    return target
