"""Warm starts (``copy_trials``): trials of one study become trials (or enqueued parameters) of
another, checked against the target's directions and search space.

A source trial is copied only if every parameter is in the target's search space with a value its
distribution holds (a target without a search space takes the trial's own distributions) and, for
a complete trial, its values count matches the target's objectives; others are skipped and counted.
Copies keep params, values, intermediate values, user attrs and constraints, and name their origin
in the system attr ``optuna_bridge:copied_from``; leases, client ids and other bookkeeping stay
behind. Everything is checked before the first write, as for ``add_trials``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.studies.space import check_value
from bridge_worker.studies.study import FIXED_PARAMS_ATTR
from bridge_worker.wire.errors import BridgeError

COPIED_FROM_ATTR = "optuna_bridge:copied_from"


def copies(
    source: Sequence[FrozenTrial],
    source_name: str,
    target: Mapping[str, BaseDistribution],
    n_objectives: int,
    params_only: bool,
) -> tuple[list[FrozenTrial], int]:
    """The trials to write into the target (finished copies, or WAITING trials holding the
    parameters to evaluate) and how many source trials were skipped."""
    made: list[FrozenTrial] = []
    skipped = 0
    for trial in source:
        distributions = _fitting(trial, target)
        if distributions is None or (
            not params_only
            and trial.state == TrialState.COMPLETE
            and len(trial.values or ()) != n_objectives
        ):
            skipped += 1
            continue
        origin = {COPIED_FROM_ATTR: {"study": source_name, "number": trial.number}}
        if params_only:
            made.append(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    user_attrs=dict(trial.user_attrs),
                    system_attrs={**origin, FIXED_PARAMS_ATTR: dict(trial.params)},
                )
            )
            continue
        constraints = {
            k: v for k, v in trial.system_attrs.items() if k.startswith(_CONSTRAINTS_KEY)
        }
        made.append(
            optuna.trial.create_trial(
                state=trial.state,
                params=dict(trial.params),
                distributions=distributions,
                values=list(trial.values) if trial.state == TrialState.COMPLETE else None,
                user_attrs=dict(trial.user_attrs),
                system_attrs={**constraints, **origin},
                intermediate_values=dict(trial.intermediate_values),
            )
        )
    return made, skipped


def _fitting(
    trial: FrozenTrial, target: Mapping[str, BaseDistribution]
) -> dict[str, BaseDistribution] | None:
    """The trial's distributions in the target (None: a parameter does not fit)."""
    if not target:
        return dict(trial.distributions)
    fitting: dict[str, Any] = {}
    for name, value in trial.params.items():
        distribution = target.get(name)
        if distribution is None:
            return None
        try:
            check_value(distribution, value, name)
        except BridgeError:
            return None
        fitting[name] = distribution
    return fitting
