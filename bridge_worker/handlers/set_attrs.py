"""``set_attrs``: user attributes of a study or of one of its trials."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.schema import SetAttrsParams, SetAttrsResult


@rpc_method("set_attrs")
def set_attrs(registry: StudyRegistry, params: SetAttrsParams) -> SetAttrsResult:
    """Set (add or replace) user attrs. A finished trial's attrs are frozen, as in Optuna:
    set them with ``tell``'s ``user_attrs`` instead."""
    field = "$.params.user_attrs"
    if params.number is UNSET:
        entry = registry.get(params.study)
        registry.limits.check_user_attrs(params.user_attrs, field, entry.user_attrs())
        entry.set_user_attrs(params.user_attrs)
        return SetAttrsResult()
    entry = registry.trial_study(params.study, params.number)
    trial = entry.unfinished_trial(params.number)
    registry.limits.check_user_attrs(params.user_attrs, field, trial.user_attrs)
    entry.set_user_attrs(params.user_attrs, trial)
    return SetAttrsResult()
