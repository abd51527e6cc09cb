"""Optuna objects to wire structs (the shapes a parent sees)."""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.leases import iso, lease_of
from bridge_worker.schema import TrialInfo, TrialStateName

STATE_NAMES: dict[TrialState, TrialStateName] = {
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "fail",
}
STATES_BY_NAME: dict[TrialStateName, TrialState] = {v: k for k, v in STATE_NAMES.items()}

METRIC_NAMES_ATTR = "study:metric_names"
"""Optuna's own study system attr for ``Study.set_metric_names``."""


def metric_names(system_attrs: dict[str, Any]) -> list[str] | None:
    """A study's metric names from its system attrs (None when it has none)."""
    names = system_attrs.get(METRIC_NAMES_ATTR)
    return list(names) if names else None


def stored_metric_names(storage: BaseStorage, study_id: int) -> list[str] | None:
    return metric_names(storage.get_study_system_attrs(study_id))


def trial_info(trial: FrozenTrial, datetimes: bool = False) -> TrialInfo:
    info = TrialInfo(
        number=trial.number,
        state=STATE_NAMES[trial.state],
        params=trial.params,
        values=trial.values,
        user_attrs=trial.user_attrs,
        intermediate_values=trial.intermediate_values,
    )
    lease = lease_of(trial)
    if lease is not None:
        info.lease_end = iso(lease.end)
    if datetimes:
        info.datetime_start = _iso(trial.datetime_start)
        info.datetime_complete = _iso(trial.datetime_complete)
    return info


def _iso(moment: object) -> str | None:
    return None if moment is None else moment.isoformat()  # type: ignore[attr-defined]
