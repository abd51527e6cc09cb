"""The registry's ``ask``, ``tell`` and ``renew``: the rules of handing trials out and taking
their results in, and the bookkeeping that goes with them (heartbeats, leases and their sweep,
clients' pending trials, which study identity each trial was asked from), so a handler makes one
call (:meth:`~bridge_worker.studies.registry.StudyRegistry.ask`) and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgspec import UNSET
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from bridge_worker.storage.backend import opened_by
from bridge_worker.studies.convert import STATE_NAMES, STATES_BY_NAME, iso
from bridge_worker.studies.leases import lease_of
from bridge_worker.studies.samplers import check_sampler_cost
from bridge_worker.studies.space import to_distributions
from bridge_worker.studies.stopping import stopped_entry, study_stopped
from bridge_worker.studies.study import StudyEntry, trial_id_of
from bridge_worker.studies.trial_guard import Created, SeenDistributions, abandon, check_ask
from bridge_worker.wire.errors import (
    BridgeError,
    ErrorKind,
    invalid_params,
    trial_never_asked,
)
from bridge_worker.wire.schema import (
    AskedTrial,
    AskParams,
    AskResult,
    RenewParams,
    RenewResult,
    TellParams,
    TellResult,
    TrialStateName,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from optuna.distributions import BaseDistribution

    from bridge_worker.studies.registry import StudyRegistry


def ask(registry: StudyRegistry, params: AskParams) -> AskResult:
    """``ask``: check everything the trials will need, then create them; a failure on the way
    leaves no trial behind (:mod:`bridge_worker.studies.trial_guard`). Each trial is tracked by
    the heartbeat and, with ``lease_s``, by the lease sweep; a client's pending trials are
    handed out again first."""
    registry.limits.check("max_ask", "trials asked at once (n)", params.n)
    entry = registry.get(params.study)
    registry.fail_stale_trials(entry)
    distributions = entry.distributions
    extra = {}
    if params.search_space is not UNSET:
        extra = to_distributions(params.search_space, "$.params.search_space", registry.limits)
        distributions = {**distributions, **extra}
        registry.limits.check("max_params", "parameters in the ask", len(distributions))
        check_sampler_cost(
            entry.config.sampler, distributions, registry.limits, "$.params.search_space"
        )
    registry.limits.check(
        "max_ask_values",
        "values sampled by the ask (n x parameters)",
        params.n * len(distributions),
    )
    if not distributions:
        raise invalid_params(
            "$.params.search_space",
            f"study {entry.name!r} has no search space: give one to create, or to this ask",
        )
    entry.check_params(params.fixed_params, "$.params.fixed_params", distributions)
    if params.lease_s is UNSET:
        if params.retry:
            raise invalid_params("$.params.retry", "retry needs lease_s")
        lease_s = None
    else:
        lease_s = params.lease_s
    check_ask(
        entry.distributions,
        extra,
        params.fixed_params,
        entry.config.sampler,
        entry.seen,
        entry.storage,
        entry.study_id,
    )
    stopped = stopped_entry(entry)
    if stopped is not None:
        raise study_stopped(entry.name, stopped)
    registry.leases.sweep_if_due(entry.study_id)  # retries of ended leases first
    client = None if params.client is UNSET else params.client
    resumed = (
        [] if client is None else _resume(registry, entry, client, params, lease_s, distributions)
    )
    created: list[Created] = []

    def trial_asked(study_id: int, trial_id: int, popped: bool) -> None:
        created.append(Created(trial_id, popped))
        registry.trial_asked(study_id, trial_id)

    storage = registry.storage
    waiting = opened_by(storage).may_have_waiting_trials(storage, entry.study_id)
    try:
        asked = [
            entry.ask_one(distributions, params.fixed_params, trial_asked, waiting, client)
            for _ in range(params.n - len(resumed))
        ]
        for trial, trial_id, inherited_lease in asked:
            if lease_s is not None:
                end = entry.grant_lease(trial_id, lease_s, params.retry)
                trial.lease_end = iso(end)
                registry.leases.watch(entry.study_id, at=end)
            elif inherited_lease:  # a retry made by Optuna's heartbeat callback copies every attr
                entry.clear_lease(trial_id)
    except BaseException as error:
        abandon(entry.storage, created, error)
        for made in created:
            registry.trial_told(made.trial_id)
        if isinstance(error, ValueError) and extra:  # another worker sampled a name meanwhile?
            entry.seen = SeenDistributions()  # re-read: the conflict is then invalid_params
            check_ask(
                entry.distributions,
                extra,
                params.fixed_params,
                entry.config.sampler,
                entry.seen,
                entry.storage,
                entry.study_id,
            )
        raise
    if extra:
        entry.seen.learn(extra)
    registry.asked.asked(entry, [t.number for t in resumed] + [t.number for t, _, _ in asked])
    return AskResult(trials=resumed + [trial for trial, _, _ in asked])


def _resume(
    registry: StudyRegistry,
    entry: StudyEntry,
    client: str,
    params: AskParams,
    lease_s: float | None,
    distributions: Mapping[str, BaseDistribution],
) -> list[AskedTrial]:
    """The client's own pending trials, handed out again (their lease renewed, or granted when
    the ask gives ``lease_s``), each with every parameter of the ask's space."""
    resumed = []
    for frozen in registry.clients.take(entry.storage, entry.study_id, client, params.n):
        try:
            values = entry.complete_params(frozen, distributions)
        except UpdateFinishedTrialError:  # a sweep failed it since: no longer the client's
            continue
        trial = AskedTrial(number=frozen.number, params=values, resumed=True)
        end = None
        if lease_s is not None:
            end = entry.grant_lease(trial_id_of(frozen), lease_s, params.retry)
        elif lease_of(frozen) is not None:
            end = entry.renew_lease(frozen, None)
        if end is not None:
            trial.lease_end = iso(end)
            registry.leases.watch(entry.study_id, at=end)
        resumed.append(trial)
    return resumed


def tell(registry: StudyRegistry, params: TellParams) -> TellResult:
    """``tell``: the trial's outcome stored once (a compare-and-set: a trial finished meanwhile
    is ``trial_finished``, or its stored outcome with ``skip_if_finished``); the heartbeat and
    the asked-trials record forget it."""
    entry = registry.trial_study(params.study, params.number)
    values = entry.outcome_values(params.value, params.values, params.state, "$.params")
    state = STATES_BY_NAME[params.state]
    constraints = None if params.constraints is UNSET else params.constraints
    if not params.user_attrs and constraints is None:  # most tells: the trial is read once
        trial_id = entry.trial_id(params.number)
        told = entry.tell_if_running(trial_id, params.number, values, state)
        if told is not None:
            registry.trial_told(trial_id)
            registry.asked.told(entry.name, params.number)
            return _told(entry, params.number, STATE_NAMES[told[0]], told[1])
    frozen = entry.trial(params.number)  # not running (or more to store): read, then decide
    trial_id = trial_id_of(frozen)
    if frozen.state.is_finished():
        registry.trial_told(trial_id)
        if params.skip_if_finished:
            return _told(entry, frozen.number, STATE_NAMES[frozen.state], frozen.values)
        raise entry.finished(frozen)
    if frozen.state == TrialState.WAITING:
        raise trial_never_asked(entry.name, params.number)
    registry.limits.check_user_attrs(params.user_attrs, "$.params.user_attrs", frozen.user_attrs)
    entry.check_constraints(constraints, params.state, "$.params.constraints")
    try:
        state, told_values = entry.tell(frozen, values, state, params.user_attrs, constraints)
    except BridgeError as error:
        if error.kind is not ErrorKind.TRIAL_FINISHED:
            raise
        registry.trial_told(trial_id)  # finished by another worker (or a lease) meanwhile
        if params.skip_if_finished:
            return TellResult(params.number, error.data["state"], error.data["values"])
        raise
    registry.trial_told(trial_id)
    registry.asked.told(entry.name, params.number)
    return _told(entry, params.number, STATE_NAMES[state], told_values)


def _told(
    entry: StudyEntry, number: int, state: TrialStateName, values: list[float] | None
) -> TellResult:
    """A tell's reply, with ``stopped`` once a stop rule of the study holds."""
    result = TellResult(number, state, values)
    stopped = stopped_entry(entry)
    if stopped is not None:
        result.stopped = stopped
    return result


def renew(registry: StudyRegistry, params: RenewParams) -> RenewResult:
    """Extend a running trial's lease from now (by ``lease_s`` or by its own length)."""
    entry = registry.trial_study(params.study, params.number)
    trial = entry.open_trial(params.number)
    lease_s = None if params.lease_s is UNSET else params.lease_s
    end = entry.renew_lease(trial, lease_s)
    registry.leases.watch(entry.study_id, at=end)
    return RenewResult(number=params.number, lease_end=iso(end))
