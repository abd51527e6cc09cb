"""``add_trials``: record trials evaluated outside the worker ("tell without ask").

Results from an earlier run, a colleague's notebook or a hand-picked baseline become ordinary
trials of the study, so its sampler learns from them exactly as from trials it asked itself.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from msgspec import UNSET
from optuna.trial import FrozenTrial

from bridge_worker.studies.convert import STATES_BY_NAME, as_param_type
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.study import StudyEntry, constraint_attrs
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import invalid_params
from bridge_worker.wire.schema import AddedTrial, AddTrialsParams, AddTrialsResult
from bridge_worker.wire.storage_bounds import check_step


@rpc_method("add_trials")
def add_trials(registry: StudyRegistry, params: AddTrialsParams) -> AddTrialsResult:
    """All or nothing: every trial is checked (params against the study's search space, values
    against its directions) before the first one is written; the first fault is ``invalid_params``
    naming its field (``$.params.trials[2].params.lr``)."""
    registry.limits.check("max_add_trials", "trials added at once", len(params.trials))
    entry = registry.get(params.study)
    registry.limits.check(
        "max_add_values",
        "values add_trials writes (per trial: 1 + params + intermediate values + user attrs)",
        sum(
            1 + len(t.params) + len(t.intermediate_values) + len(t.user_attrs)
            for t in params.trials
        ),
    )
    frozen = [
        _to_frozen(registry, entry, trial, f"$.params.trials[{i}]")
        for i, trial in enumerate(params.trials)
    ]

    def stop(numbers: list[int]) -> None:
        registry.stop_point(
            f"{len(numbers)} of the {len(frozen)} trials were stored (data.stored), the rest "
            "were not",
            stored=numbers,
        )

    return AddTrialsResult(numbers=entry.add_trials(frozen, stop))


def _to_frozen(
    registry: StudyRegistry, entry: StudyEntry, trial: AddedTrial, field: str
) -> FrozenTrial:
    distributions = entry.check_params(trial.params, f"{field}.params")
    params = {  # 3 on a float parameter is 3.0
        name: as_param_type(distributions[name], value) for name, value in trial.params.items()
    }
    values = entry.outcome_values(trial.value, trial.values, trial.state, field)
    registry.limits.check_user_attrs(trial.user_attrs, f"{field}.user_attrs")
    for step, value in trial.intermediate_values.items():
        check_step(step, registry.max_step, f"{field}.intermediate_values.{step}")
        if not math.isfinite(value):
            raise invalid_params(
                f"{field}.intermediate_values.{step}", "intermediate values must be finite"
            )
    system_attrs: dict[str, Any] = {}
    if trial.constraints is not UNSET:
        entry.check_constraints(trial.constraints, trial.state, f"{field}.constraints")
        system_attrs = constraint_attrs(trial.constraints)
    try:
        return optuna.trial.create_trial(
            state=STATES_BY_NAME[trial.state],
            params=params,
            distributions=distributions,
            values=values,
            user_attrs=dict(trial.user_attrs),
            system_attrs=system_attrs,
            intermediate_values=dict(trial.intermediate_values),
        )
    except ValueError as exc:  # Optuna's own validation, should anything slip past the above
        raise invalid_params(field, str(exc)) from None
