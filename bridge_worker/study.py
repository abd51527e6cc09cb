"""The served study: one Optuna study as the handlers use it, and the one room where the worker
touches Optuna's private API on their behalf.

Handlers read like the protocol (decode, call one method here, return a result struct); every
private Optuna name they need (``Study._storage``, ``_study_id``, ``Trial._trial_id``,
``_suggest``, ``_fixed_params``, ``_tell_with_warning``, ``_CONSTRAINTS_KEY``) is used here, so an
Optuna upgrade that moves one is fixed in this file. ``tests/test_handler_boundaries.py`` fails if
a handler names a private Optuna attribute or imports another handler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from msgspec import UnsetType
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.study._tell import _tell_with_warning
from optuna.trial import FrozenTrial, TrialState

from bridge_worker import leases
from bridge_worker.convert import METRIC_NAMES_ATTR, STATE_NAMES, as_param_type, stored_metric_names
from bridge_worker.errors import (
    invalid_params,
    trial_finished,
    trial_never_asked,
    trial_not_found,
)
from bridge_worker.identity import Identity
from bridge_worker.schema import AskedTrial, Direction, JsonScalar, StudyConfig, UserAttrs
from bridge_worker.storage_bounds import MAX_INT
from bridge_worker.trial_guard import SeenDistributions

FIXED_PARAMS_ATTR = "fixed_params"
"""Optuna's own trial system attr for parameters decided before sampling (``enqueue_trial``)."""


def constraint_attrs(constraints: list[float]) -> dict[str, float]:
    """Constraints as the trial system attrs Optuna's ``Trial.set_constraint`` writes, where
    every sampler that supports constrained optimization (and ``best``) finds them."""
    return {f"{_CONSTRAINTS_KEY}:{index}": value for index, value in enumerate(constraints)}


def direction_name(direction: StudyDirection) -> Direction:
    return "maximize" if direction == StudyDirection.MAXIMIZE else "minimize"


def trial_id_of(trial: FrozenTrial) -> int:
    """The storage's id of a trial (the heartbeat keeper tracks trials by it)."""
    return trial._trial_id


@dataclass(slots=True)
class StudyEntry:
    """A served study: the Optuna study, its config and its search space as distributions."""

    name: str
    study: optuna.Study
    config: StudyConfig
    distributions: dict[str, BaseDistribution]
    token: str | None
    """The study's identity token (see :mod:`bridge_worker.identity`); None only for a study
    that held nothing yet when it was loaded."""
    seen: SeenDistributions = field(default_factory=SeenDistributions)
    """Distributions its parameters were sampled from before (checked before an ask creates)."""

    # ---- what the study is --------------------------------------------------------------

    @property
    def storage(self) -> BaseStorage:
        return self.study._storage

    @property
    def study_id(self) -> int:
        return self.study._study_id

    @property
    def identity(self) -> Identity:
        return Identity(self.study._study_id, self.token)

    @property
    def directions(self) -> list[Direction]:
        return [direction_name(d) for d in self.study.directions]

    @property
    def n_objectives(self) -> int:
        return len(self.study.directions)

    def outcome_values(
        self, value: float | UnsetType, values: list[float] | UnsetType | None, state: str,
        at: str,
    ) -> list[float] | None:
        """The values a finished trial is stored with, by one set of rules for ``tell`` and
        ``add_trials``: ``value`` or ``values``, only for a complete trial, one finite value per
        objective. ``at`` is the params' path (``$.params`` or ``$.params.trials[i]``), so the
        error names the field the parent wrote."""
        if not isinstance(value, UnsetType) and not isinstance(values, UnsetType):
            raise invalid_params(f"{at}.values", "give value or values, not both")
        given = [value] if not isinstance(value, UnsetType) else values or None
        field = f"{at}.value" if not isinstance(value, UnsetType) else f"{at}.values"
        if state != "complete":
            if given is not None:
                raise invalid_params(field, f"a {state} trial takes no value")
            return None
        if given is None:
            raise invalid_params(f"{at}.value", "a complete trial needs value or values")
        if len(given) != self.n_objectives:
            raise invalid_params(
                field,
                f"study {self.name!r} has {self.n_objectives} objective(s), got {len(given)} "
                "value(s)",
            )
        if not all(math.isfinite(v) for v in given):
            raise invalid_params(field, "values must be finite; tell state 'fail' instead")
        return list(given)

    def n_trials(self) -> int:
        return self.storage.get_n_trials(self.study_id)

    def metric_names(self) -> list[str] | None:
        return stored_metric_names(self.storage, self.study_id)

    def set_metric_names(self, names: list[str]) -> None:
        """Optuna's ``set_metric_names``, without its ExperimentalWarning."""
        self.storage.set_study_system_attr(self.study_id, METRIC_NAMES_ATTR, list(names))

    def user_attrs(self) -> dict[str, Any]:
        return self.storage.get_study_user_attrs(self.study_id)

    def set_user_attrs(self, attrs: UserAttrs, trial: FrozenTrial | None = None) -> None:
        """Set user attrs of the study, or of ``trial`` (one of its trials)."""
        storage = self.storage
        for key, value in attrs.items():
            if trial is None:
                storage.set_study_user_attr(self.study_id, key, value)
            else:
                storage.set_trial_user_attr(trial._trial_id, key, value)

    # ---- its trials -----------------------------------------------------------------------

    def trial(self, number: int) -> FrozenTrial:
        """The study's trial ``number`` as stored now, or ``trial_not_found``."""
        storage = self.storage
        if number > MAX_INT:  # no storage holds one; SQLite's driver cannot even look it up
            raise trial_not_found(self.name, number)
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        except KeyError:
            raise trial_not_found(self.name, number) from None
        return storage.get_trial(trial_id)

    def open_trial(self, number: int) -> FrozenTrial:
        """Trial ``number`` if it is running: ``trial_finished`` if it is finished,
        ``trial_not_found`` if it is enqueued but was never asked."""
        trial = self.trial(number)
        if trial.state.is_finished():
            raise trial_finished(self.name, number, STATE_NAMES[trial.state])
        if trial.state != TrialState.RUNNING:
            raise trial_never_asked(self.name, number)
        return trial

    def ask_one(
        self,
        distributions: Mapping[str, BaseDistribution],
        fixed_params: Mapping[str, JsonScalar],
        asked: Callable[[int, int, bool], None],
    ) -> tuple[AskedTrial, int, bool]:
        """One ``study.ask`` (an enqueued trial is served first, as in Optuna), then every
        parameter. ``asked(study_id, trial_id, popped)`` runs as soon as the trial exists
        (``popped``: taken from the queue of enqueued trials), before the sampler runs, so a
        request that fails later can clean up (:mod:`bridge_worker.trial_guard`). Also returns
        the trial's id and whether it came with a lease attr of an earlier trial.

        Fixed parameters join the trial's own ``fixed_params`` (those of an enqueued trial)
        before any parameter is sampled, exactly as Optuna's ``enqueue_trial`` would have put
        them there.
        """
        study = self.study
        # ``Study.ask`` without ``fixed_distributions``, split so the trial's id is known before
        # ``Trial(...)`` runs the sampler's ``before_trial`` (which may raise).
        study._thread_local.cached_all_trials = None
        trial_id = study._pop_waiting_trial_id()
        popped = trial_id is not None
        if trial_id is None:
            trial_id = self.storage.create_new_trial(self.study_id)
        asked(self.study_id, trial_id, popped)
        trial = optuna.Trial(study, trial_id)
        if fixed_params:
            merged = {**trial._fixed_params, **fixed_params}
            self.storage.set_trial_system_attr(trial._trial_id, FIXED_PARAMS_ATTR, merged)
            trial._fixed_params = merged
        # ``_suggest`` is what ``Study.ask(fixed_distributions=...)`` runs for each distribution;
        # calling it directly returns the values without the deep copy ``trial.params`` makes.
        values = {
            name: as_param_type(dist, trial._suggest(name, dist))
            for name, dist in distributions.items()
        }
        inherited_lease = leases.LEASE_ATTR in trial._cached_frozen_trial.system_attrs
        return AskedTrial(number=trial.number, params=values), trial._trial_id, inherited_lease

    def tell(
        self,
        trial: FrozenTrial,
        values: list[float] | None,
        state: TrialState,
        user_attrs: UserAttrs,
        constraints: list[float] | None,
    ) -> tuple[TrialState, list[float] | None]:
        """Store user attrs and constraints, then ``Study.tell`` without the deep copy of the
        finished trial it would return. ``trial_finished`` if another worker (or a stale-trial
        sweep) finished the trial since it was read.

        GridSampler calls ``Study.stop`` once its grid is exhausted, which Optuna only allows
        inside ``optimize``, after the trial is stored; in ask-and-tell mode stopping is the
        parent's decision, so a RuntimeError raised once the trial is finished is not an error.
        """
        storage = self.storage
        trial_id = trial._trial_id
        try:
            self.set_user_attrs(user_attrs, trial)
            for key, value in constraint_attrs(constraints or []).items():
                storage.set_trial_system_attr(trial_id, key, value)
            try:
                told_state, told_values, _ = _tell_with_warning(
                    self.study, trial.number, values, state=state, suppress_warning=True
                )
            except RuntimeError:
                stored = storage.get_trial(trial_id)
                if not stored.state.is_finished():
                    raise
                return stored.state, stored.values
        except UpdateFinishedTrialError:
            now = storage.get_trial(trial_id).state
            raise trial_finished(self.name, trial.number, STATE_NAMES[now]) from None
        return told_state, told_values

    def report(self, trial: FrozenTrial, step: int, value: float) -> bool:
        """Store the value at ``step`` (as ``Trial.report``; a step reported twice keeps its
        first value), renew the trial's lease, and ask the pruner (``Trial.should_prune``)."""
        storage = self.storage
        if step not in trial.intermediate_values:
            storage.set_trial_intermediate_value(trial._trial_id, step, value)
            trial = storage.get_trial(trial._trial_id)
        leases.touch(storage, trial)  # any report is a sign of life: renew a lease
        return bool(self.study.pruner.prune(self.study, trial))

    def add_trials(
        self, trials: list[FrozenTrial], stop: Callable[[list[int]], None] | None = None
    ) -> list[int]:
        """Store finished trials as they are (Optuna's ``add_trial``); their numbers.
        ``stop(numbers so far)`` runs before each trial and may raise (a stop signal)."""
        storage = self.storage
        numbers: list[int] = []
        for trial in trials:
            if stop is not None:
                stop(numbers)
            trial_id = storage.create_new_trial(self.study_id, template_trial=trial)
            numbers.append(storage.get_trial_number_from_id(trial_id))
        return numbers

    # ---- leases of its trials ----------------------------------------------------------------

    def grant_lease(self, trial_id: int, lease_s: float, retry: int) -> float:
        return leases.grant(self.storage, trial_id, lease_s, retry)

    def clear_lease(self, trial_id: int) -> None:
        leases.clear(self.storage, trial_id)

    def renew_lease(self, trial: FrozenTrial, lease_s: float | None) -> float:
        return leases.renew(self.storage, trial, lease_s)
