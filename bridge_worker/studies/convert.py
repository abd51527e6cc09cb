"""Optuna objects to wire structs (the shapes a parent sees)."""

from __future__ import annotations

import datetime
from typing import Any, overload

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.studies.client_ids import client_of
from bridge_worker.studies.leases import LEASE_ATTR, lease_of
from bridge_worker.wire.schema import JsonScalar, TrialInfo, TrialStateName

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
    client = client_of(trial)
    if client is not None:
        info.client = client
    if datetimes:
        info.datetime_start = iso(trial.datetime_start)
        info.datetime_complete = iso(trial.datetime_complete)
    return info


def as_param_type(distribution: BaseDistribution, value: JsonScalar) -> JsonScalar:
    """A float parameter's value as a float and an int parameter's as an int, whatever number
    type fixed or enqueued params gave: a parameter keeps one JSON type in every reply."""
    if isinstance(distribution, FloatDistribution) and isinstance(value, int | float):
        return float(value)
    if isinstance(distribution, IntDistribution) and isinstance(value, int | float):
        return int(value)
    return value


@overload
def iso(moment: float) -> str: ...
@overload
def iso(moment: datetime.datetime | None) -> str | None: ...
def iso(moment: datetime.datetime | float | None) -> str | None:
    """Every time on the wire: ISO 8601 in UTC with ``Z``, as the logs write time. ``moment`` is
    a time as Optuna stores it (naive, local) or seconds since the epoch (a lease's end)."""
    if moment is None:
        return None
    if isinstance(moment, datetime.datetime):
        utc = moment.astimezone(datetime.UTC)
    else:
        utc = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def ended_lease(trial: FrozenTrial) -> str | None:
    """When a failed trial's lease ended (ISO 8601), if that is why it failed; else None."""
    if trial.state != TrialState.FAIL:
        return None
    raw = trial.system_attrs.get(LEASE_ATTR)
    if not isinstance(raw, dict):
        return None
    end = raw.get("end")
    if not isinstance(end, int | float):
        return None
    completed = trial.datetime_complete
    if completed is not None and completed.timestamp() < end:
        return None  # told "fail" while its lease still ran: not the lease's doing
    return iso(end)
