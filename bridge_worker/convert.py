"""Optuna objects to wire structs (the shapes a parent sees)."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from bridge_worker.schema import TrialInfo, TrialStateName

STATE_NAMES: dict[TrialState, TrialStateName] = {
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "fail",
}
STATES_BY_NAME: dict[TrialStateName, TrialState] = {v: k for k, v in STATE_NAMES.items()}


def trial_info(trial: FrozenTrial, datetimes: bool = False) -> TrialInfo:
    info = TrialInfo(
        number=trial.number,
        state=STATE_NAMES[trial.state],
        params=trial.params,
        values=trial.values,
        user_attrs=trial.user_attrs,
        intermediate_values=trial.intermediate_values,
    )
    if datetimes:
        info.datetime_start = _iso(trial.datetime_start)
        info.datetime_complete = _iso(trial.datetime_complete)
    return info


def _iso(moment: object) -> str | None:
    return None if moment is None else moment.isoformat()  # type: ignore[attr-defined]
