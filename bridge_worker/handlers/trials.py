"""Methods that ask for trials, tell their results and read them back."""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna
from msgspec import UNSET
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY as CONSTRAINTS_KEY
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from bridge_worker import leases
from bridge_worker.convert import (
    STATE_NAMES,
    STATES_BY_NAME,
    as_param_type,
    stored_metric_names,
    trial_info,
)
from bridge_worker.dispatch import rpc_method
from bridge_worker.errors import BridgeError, ErrorKind, invalid_params
from bridge_worker.registry import StudyEntry, StudyRegistry
from bridge_worker.samplers import check_sampler_cost
from bridge_worker.schema import (
    AskedTrial,
    AskParams,
    AskResult,
    BestParams,
    JsonScalar,
    RenewParams,
    RenewResult,
    TellParams,
    TellResult,
    TrialsParams,
    TrialsResult,
)
from bridge_worker.space import check_value, to_distributions

FIXED_PARAMS_ATTR = "fixed_params"
"""Optuna's own trial system attr for parameters decided before sampling (``enqueue_trial``)."""


@rpc_method("ask")
def ask(registry: StudyRegistry, params: AskParams) -> AskResult:
    registry.limits.check("max_ask", "trials asked at once (n)", params.n)
    entry = registry.get(params.study)
    registry.fail_stale_trials(entry)
    distributions = entry.distributions
    if params.search_space is not UNSET:
        extra = to_distributions(params.search_space, "$.params.search_space", registry.limits)
        distributions = {**distributions, **extra}
        registry.limits.check("max_params", "parameters in the ask", len(distributions))
        check_sampler_cost(entry.config.sampler, distributions, registry.limits,
                           "$.params.search_space")
    registry.limits.check(
        "max_ask_values", "values sampled by the ask (n x parameters)",
        params.n * len(distributions),
    )
    if not distributions:
        raise invalid_params(
            "$.params.search_space",
            f"study {entry.name!r} has no search space: give one to create, or to this ask",
        )
    for name, value in params.fixed_params.items():
        distribution = distributions.get(name)
        field = f"$.params.fixed_params.{name}"
        if distribution is None:
            raise invalid_params(field, f"{name!r} is not in the search space")
        check_value(distribution, value, field)
    if params.lease_s is UNSET:
        if params.retry:
            raise invalid_params("$.params.retry", "retry needs lease_s")
        lease_s = None
    else:
        lease_s = params.lease_s
    registry.leases.sweep_if_due(entry.study._study_id)  # retries of ended leases first
    asked = [
        _ask_one(registry, entry.study, distributions, params.fixed_params)
        for _ in range(params.n)
    ]
    storage = entry.study._storage
    for trial, trial_id, inherited_lease in asked:
        if lease_s is not None:
            end = leases.grant(storage, trial_id, lease_s, params.retry)
            trial.lease_end = leases.iso(end)
            registry.leases.watch(entry.study._study_id, at=end)
        elif inherited_lease:  # a retry made by Optuna's heartbeat callback copies every attr
            leases.clear(storage, trial_id)
    return AskResult(trials=[trial for trial, _, _ in asked])


def _ask_one(
    registry: StudyRegistry,
    study: optuna.Study,
    distributions: Mapping[str, BaseDistribution],
    fixed_params: Mapping[str, JsonScalar],
) -> tuple[AskedTrial, int, bool]:
    """One ``study.ask`` (an enqueued trial is served first, as in Optuna), then every parameter.
    Also returns the trial's id and whether it came with a lease attr of an earlier trial.

    Fixed parameters join the trial's own ``fixed_params`` (those of an enqueued trial) before any
    parameter is sampled, exactly as Optuna's ``enqueue_trial`` would have put them there.
    """
    trial = study.ask()
    registry.trial_asked(study._study_id, trial._trial_id)
    if fixed_params:
        merged = {**trial._fixed_params, **fixed_params}
        study._storage.set_trial_system_attr(trial._trial_id, FIXED_PARAMS_ATTR, merged)
        trial._fixed_params = merged
    # ``_suggest`` is what ``Study.ask(fixed_distributions=...)`` runs for each distribution;
    # calling it directly returns the values without the deep copy that ``trial.params`` makes.
    values = {
        name: as_param_type(dist, trial._suggest(name, dist))
        for name, dist in distributions.items()
    }
    inherited_lease = leases.LEASE_ATTR in trial._cached_frozen_trial.system_attrs
    return AskedTrial(number=trial.number, params=values), trial._trial_id, inherited_lease


@rpc_method("tell")
def tell(registry: StudyRegistry, params: TellParams) -> TellResult:
    entry = registry.get(params.study)
    values = _told_values(entry, params)
    study = entry.study
    storage = study._storage
    frozen = find_trial(entry, params.number)
    trial_id = frozen._trial_id
    if frozen.state.is_finished():
        registry.trial_told(trial_id)
        if params.skip_if_finished:
            return TellResult(frozen.number, STATE_NAMES[frozen.state], frozen.values)
        raise trial_finished(entry, params.number, frozen.state)
    if frozen.state == TrialState.WAITING:
        raise BridgeError(
            ErrorKind.TRIAL_NOT_FOUND,
            f"trial {params.number} of study {entry.name!r} is enqueued but was never asked",
            study=entry.name, number=params.number,
        )
    registry.limits.check_user_attrs(params.user_attrs, "$.params.user_attrs", frozen.user_attrs)
    try:
        for key, value in params.user_attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        if params.constraints is not UNSET:
            _store_constraints(storage, trial_id, params)
        state, told_values = _tell(study, params.number, values, STATES_BY_NAME[params.state])
    except UpdateFinishedTrialError:
        # Another worker (or a stale-trial sweep) finished it between our check and our tell.
        registry.trial_told(trial_id)
        raise trial_finished(entry, params.number, storage.get_trial(trial_id).state) from None
    registry.trial_told(trial_id)
    return TellResult(params.number, STATE_NAMES[state], told_values)


def _tell(
    study: optuna.Study, number: int, values: list[float] | None, state: TrialState
) -> tuple[TrialState, list[float] | None]:
    """``Study.tell`` without the deep copy of the finished trial it would return.

    GridSampler calls ``Study.stop`` once its grid is exhausted, which Optuna only allows inside
    ``optimize``; the trial is stored by then, and in ask-and-tell mode stopping is the parent's
    decision, so that one RuntimeError is not an error here.
    """
    try:
        told_state, told_values, _ = _tell_with_warning(
            study, number, values, state=state, suppress_warning=True
        )
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise
        frozen = study._storage.get_trial(
            study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        )
        return frozen.state, frozen.values
    return told_state, told_values


def _store_constraints(storage: BaseStorage, trial_id: int, params: TellParams) -> None:
    """Store constraints as Optuna's ``Trial.set_constraint`` does, where every sampler that
    supports constrained optimization (and ``best``) finds them."""
    assert params.constraints is not UNSET
    if params.state == "fail":
        raise invalid_params("$.params.constraints", "a failed trial takes no constraints")
    if not all(math.isfinite(c) for c in params.constraints):
        raise invalid_params("$.params.constraints", "constraints must be finite")
    for index, value in enumerate(params.constraints):
        storage.set_trial_system_attr(trial_id, f"{CONSTRAINTS_KEY}:{index}", value)


def find_trial(entry: StudyEntry, number: int) -> FrozenTrial:
    """The study's trial ``number`` as stored now, or ``trial_not_found``."""
    storage = entry.study._storage
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(entry.study._study_id, number)
    except KeyError:
        raise BridgeError(
            ErrorKind.TRIAL_NOT_FOUND,
            f"study {entry.name!r} has no trial number {number}",
            study=entry.name, number=number,
        ) from None
    return storage.get_trial(trial_id)


def trial_finished(entry: StudyEntry, number: int, state: TrialState) -> BridgeError:
    return BridgeError(
        ErrorKind.TRIAL_FINISHED,
        f"trial {number} of study {entry.name!r} is already {STATE_NAMES[state]}",
        study=entry.name, number=number, state=STATE_NAMES[state],
    )


def _told_values(entry: StudyEntry, params: TellParams) -> list[float] | None:
    if params.value is not UNSET and params.values is not UNSET:
        raise invalid_params("$.params.values", "give value or values, not both")
    values = [params.value] if params.value is not UNSET else params.values or None
    field = "$.params.value" if params.value is not UNSET else "$.params.values"
    if params.state != "complete":
        if values is not None:
            raise invalid_params(field, f"a {params.state} trial takes no value")
        return None
    if values is None:
        raise invalid_params("$.params.value", "a complete trial needs value or values")
    n_objectives = len(entry.study.directions)
    if len(values) != n_objectives:
        raise invalid_params(
            field,
            f"study {entry.name!r} has {n_objectives} objective(s), got {len(values)} value(s)",
        )
    if not all(math.isfinite(v) for v in values):
        raise invalid_params(field, "values must be finite; tell state 'fail' instead")
    return values


@rpc_method("best")
def best(registry: StudyRegistry, params: BestParams) -> TrialsResult:
    """The best trial (one objective) or the Pareto front (several)."""
    entry = registry.get(params.study)
    study = entry.study
    if len(study.directions) > 1:
        front = study.best_trials
    else:
        try:
            front = [study.best_trial]
        except ValueError:
            front = []
    if not front:
        raise BridgeError(
            ErrorKind.NO_COMPLETED_TRIALS,
            f"study {entry.name!r} has no completed (and, if constrained, feasible) trial yet",
            study=entry.name,
        )
    return TrialsResult(
        trials=[trial_info(t, params.datetimes) for t in front],
        metric_names=stored_metric_names(study._storage, study._study_id),
    )


@rpc_method("trials")
def trials(registry: StudyRegistry, params: TrialsParams) -> TrialsResult:
    """The study's trials in number order; ``offset``/``limit`` give one page of them (a reply
    over ``--max-reply-bytes`` is refused, so a parent pages a large study)."""
    entry = registry.get(params.study)
    states = None if params.states is UNSET else tuple(STATES_BY_NAME[s] for s in params.states)
    study = entry.study
    found = study.get_trials(deepcopy=False, states=states)
    end = None if params.limit is UNSET else params.offset + params.limit
    page = found[params.offset : end]
    return TrialsResult(
        trials=[trial_info(t, params.datetimes) for t in page],
        metric_names=stored_metric_names(study._storage, study._study_id),
    )


@rpc_method("renew")
def renew(registry: StudyRegistry, params: RenewParams) -> RenewResult:
    """Extend a running trial's lease from now (by ``lease_s`` or by its own length)."""
    entry = registry.get(params.study)
    trial = find_trial(entry, params.number)
    if trial.state.is_finished():
        raise trial_finished(entry, params.number, trial.state)
    if trial.state == TrialState.WAITING:
        raise BridgeError(
            ErrorKind.TRIAL_NOT_FOUND,
            f"trial {params.number} of study {entry.name!r} is enqueued but was never asked",
            study=entry.name, number=params.number,
        )
    lease_s = None if params.lease_s is UNSET else params.lease_s
    end = leases.renew(entry.study._storage, trial, lease_s)
    registry.leases.watch(entry.study._study_id, at=end)
    return RenewResult(number=params.number, lease_end=leases.iso(end))
