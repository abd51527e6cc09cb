"""``set_attrs``: user attributes of a study or of one of its trials."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.dispatch import rpc_method
from bridge_worker.handlers.trials import find_trial, trial_finished
from bridge_worker.registry import StudyRegistry
from bridge_worker.schema import SetAttrsParams, SetAttrsResult


@rpc_method("set_attrs")
def set_attrs(registry: StudyRegistry, params: SetAttrsParams) -> SetAttrsResult:
    """Set (add or replace) user attrs. A finished trial's attrs are frozen, as in Optuna:
    set them with ``tell``'s ``user_attrs`` instead."""
    entry = registry.get(params.study)
    storage = entry.study._storage
    field = "$.params.user_attrs"
    if params.number is UNSET:
        existing = storage.get_study_user_attrs(entry.study._study_id)
        registry.limits.check_user_attrs(params.user_attrs, field, existing)
        for key, value in params.user_attrs.items():
            storage.set_study_user_attr(entry.study._study_id, key, value)
        return SetAttrsResult()
    trial = find_trial(entry, params.number)
    if trial.state.is_finished():
        raise trial_finished(entry, params.number, trial.state)
    registry.limits.check_user_attrs(params.user_attrs, field, trial.user_attrs)
    for key, value in params.user_attrs.items():
        storage.set_trial_user_attr(trial._trial_id, key, value)
    return SetAttrsResult()
