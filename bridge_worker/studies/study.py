"""The served study: one Optuna study as the handlers use it, and the one room where the worker
touches Optuna's private API on their behalf.

Handlers read like the protocol (decode, call one method here, return a result struct); every
private Optuna name they need (``Study._storage``, ``_study_id``, ``Trial._trial_id``,
``_suggest``, ``_fixed_params``, ``_tell_with_warning``, ``_CONSTRAINTS_KEY``) is used here, so an
Optuna upgrade that moves one is fixed in this file.
``tests/protocol/test_handler_boundaries.py`` fails if
a handler names a private Optuna attribute or imports another handler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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

from bridge_worker.storage.identity import Identity
from bridge_worker.studies import leases
from bridge_worker.studies.client_ids import asked_by as _asked_by
from bridge_worker.studies.client_ids import pop_waiting
from bridge_worker.studies.convert import (
    METRIC_NAMES_ATTR,
    STATE_NAMES,
    as_param_type,
    ended_lease,
    stored_metric_names,
)
from bridge_worker.studies.space import check_value
from bridge_worker.studies.trial_guard import SeenDistributions
from bridge_worker.wire.errors import (
    BridgeError,
    as_bridge_error,
    invalid_params,
    trial_finished,
    trial_never_asked,
    trial_not_found,
)
from bridge_worker.wire.schema import AskedTrial, Direction, JsonScalar, StudyConfig, UserAttrs
from bridge_worker.wire.storage_bounds import MAX_INT

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
    """The study's identity token (see :mod:`bridge_worker.storage.identity`); None only for a study
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
        self,
        value: float | UnsetType,
        values: list[float] | UnsetType | None,
        state: str,
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

    def check_params(
        self,
        params: Mapping[str, Any],
        at: str,
        distributions: Mapping[str, BaseDistribution] | None = None,
    ) -> dict[str, BaseDistribution]:
        """Parameters given by the parent (``ask``'s ``fixed_params``, ``enqueue``,
        ``add_trials``), by one rule: each is in the search space (the study's, or
        ``distributions``: the study's with an ask's own) with a value its distribution holds, so
        a typo is an error rather than a silently ignored value. ``at`` is the params' object
        (``$.params.params``); returns each parameter's distribution."""
        space = self.distributions if distributions is None else distributions
        where = "the study's search space" if distributions is None else "the search space"
        found = {}
        for name, value in params.items():
            distribution = space.get(name)
            if distribution is None:
                raise invalid_params(f"{at}.{name}", f"{name!r} is not in {where}")
            check_value(distribution, value, f"{at}.{name}")
            found[name] = distribution
        return found

    @staticmethod
    def check_constraints(constraints: list[float] | None, state: str, at: str) -> None:
        """A trial's constraints (``tell``, ``add_trials``): finite, and none on a failed trial.
        ``at`` is the field (``$.params.constraints``)."""
        if constraints is None:
            return
        if state == "fail":
            raise invalid_params(at, "a failed trial takes no constraints")
        if not all(math.isfinite(c) for c in constraints):
            raise invalid_params(at, "constraints must be finite")

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
        """Set user attrs of the study, or of ``trial`` (one of its trials; ``trial_finished``
        if it was finished meanwhile)."""
        if not attrs:  # most tells carry none
            return
        storage = self.storage
        if trial is None:
            for key, value in attrs.items():
                storage.set_study_user_attr(self.study_id, key, value)
            return
        with self._unless_finished(trial):
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial._trial_id, key, value)

    # ---- its trials -----------------------------------------------------------------------

    def trial(self, number: int) -> FrozenTrial:
        """The study's trial ``number`` as stored now, or ``trial_not_found``."""
        return self.storage.get_trial(self.trial_id(number))

    def trial_id(self, number: int) -> int:
        """The storage's id of trial ``number`` (``trial_not_found``), without reading the trial
        (Optuna's storages keep the mapping in memory once known)."""
        if number > MAX_INT:  # no storage holds one; SQLite's driver cannot even look it up
            raise trial_not_found(self.name, number)
        try:
            return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        except KeyError:
            raise trial_not_found(self.name, number) from None

    def unfinished_trial(self, number: int) -> FrozenTrial:
        """Trial ``number`` unless it is finished (``trial_finished``, with its outcome)."""
        trial = self.trial(number)
        if trial.state.is_finished():
            raise self.finished(trial)
        return trial

    def open_trial(self, number: int) -> FrozenTrial:
        """Trial ``number`` if it is running: ``trial_finished`` if it is finished,
        ``trial_not_found`` if it is enqueued but was never asked."""
        trial = self.unfinished_trial(number)
        if trial.state != TrialState.RUNNING:
            raise trial_never_asked(self.name, number)
        return trial

    def finished(self, trial: FrozenTrial) -> BridgeError:
        """``trial_finished`` with the trial's outcome as stored now (``trial`` may be a copy
        read before another worker finished it)."""
        stored = self.storage.get_trial(trial._trial_id)
        return trial_finished(
            self.name, trial.number, STATE_NAMES[stored.state], stored.values, ended_lease(stored)
        )

    @contextmanager
    def _unless_finished(self, trial: FrozenTrial) -> Iterator[None]:
        """Writes to a running trial that another worker, a lease or a stale-trial sweep may
        finish meanwhile: the storage refuses them (a compare-and-set on the trial's state),
        and the parent gets ``trial_finished`` with the outcome that won."""
        try:
            yield
        except UpdateFinishedTrialError:
            raise self.finished(trial) from None
        except leases.LeaseEnded:
            raise self.finished(trial) from None

    def ask_one(
        self,
        distributions: Mapping[str, BaseDistribution],
        fixed_params: Mapping[str, JsonScalar],
        asked: Callable[[int, int, bool], None],
        waiting: bool = True,
        client: str | None = None,
    ) -> tuple[AskedTrial, int, bool]:
        """One ``study.ask`` (an enqueued trial is served first, as in Optuna), then every
        parameter. ``asked(study_id, trial_id, popped)`` runs as soon as the trial exists
        (``popped``: taken from the queue of enqueued trials), before the sampler runs, so a
        request that fails later can clean up (:mod:`bridge_worker.studies.trial_guard`). Also
        returns the trial's id and whether it came with a lease attr of an earlier trial.

        A new trial is stored with its ``client`` id in the same write, and an enqueued one gets
        it before it is popped: a worker killed mid-ask (kill -9 between two writes) leaves a
        RUNNING trial its client finds again (:mod:`bridge_worker.studies.client_ids`), never
        one of nobody's.

        Fixed parameters join the trial's own ``fixed_params`` (those of an enqueued trial)
        before any parameter is sampled, exactly as Optuna's ``enqueue_trial`` would have put
        them there. ``waiting`` False: the storage said the study holds no enqueued trial, so
        Optuna's look for one is skipped.
        """
        study = self.study
        # ``Study.ask`` without ``fixed_distributions``, split so the trial's id is known before
        # ``Trial(...)`` runs the sampler's ``before_trial`` (which may raise).
        study._thread_local.cached_all_trials = None
        trial_id = pop_waiting(self.storage, self.study_id, client) if waiting else None
        popped = trial_id is not None
        if trial_id is None:
            trial_id = self.storage.create_new_trial(self.study_id, _asked_by(client))
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

    def complete_params(
        self, trial: FrozenTrial, distributions: Mapping[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The parameters of a RUNNING trial handed out again (``ask`` ``client``), with those a
        worker killed mid-ask had not sampled yet sampled now (an enqueued trial's own fixed
        params first, as at its ask): the parent computes its objective on every parameter the
        trial stores, never on a subset."""
        missing = {name: d for name, d in distributions.items() if name not in trial.params}
        if not missing:
            return trial.params
        live = optuna.Trial(self.study, trial._trial_id)
        sampled = {name: as_param_type(d, live._suggest(name, d)) for name, d in missing.items()}
        return {**trial.params, **sampled}

    def tell(
        self,
        trial: FrozenTrial,
        values: list[float] | None,
        state: TrialState,
        user_attrs: UserAttrs,
        constraints: list[float] | None,
    ) -> tuple[TrialState, list[float] | None]:
        """Store user attrs and constraints, then ``Study.tell`` without the deep copy of the
        finished trial it would return. ``trial_finished`` (with the stored outcome) if another
        worker, a lease or a stale-trial sweep finished the trial since it was read: the finish
        is a compare-and-set on the trial's state in every storage, and only the request whose
        write won gets a success, with its own values."""
        storage = self.storage
        trial_id = trial._trial_id
        with self._unless_finished(trial):
            self.set_user_attrs(user_attrs, trial)
            if constraints:
                for key, value in constraint_attrs(constraints).items():
                    storage.set_trial_system_attr(trial_id, key, value)
            try:
                return self._optuna_tell(trial_id, trial.number, values, state)
            except ValueError:  # Optuna's "Cannot tell a COMPLETE trial": finished before
                if storage.get_trial(trial_id).state.is_finished():
                    raise self.finished(trial) from None
                raise

    def tell_if_running(
        self, trial_id: int, number: int, values: list[float] | None, state: TrialState
    ) -> tuple[TrialState, list[float] | None] | None:
        """``tell`` with nothing else to store (no user attrs, no constraints) of a trial not
        read before: Optuna's tell reads it once, where :meth:`tell` after a read of its own
        costs a second read (on an RDB storage, ~10 % of a trial's work, issue 24). None, with
        nothing written, when the trial is not running (finished, or enqueued and never
        asked): the caller then reads it and answers as :meth:`tell`'s callers do."""
        try:
            return self._optuna_tell(trial_id, number, values, state)
        except UpdateFinishedTrialError:  # finished between Optuna's read and its write
            return None
        except ValueError:  # Optuna's "Cannot tell a COMPLETE/WAITING trial"
            if self.storage.get_trial(trial_id).state != TrialState.RUNNING:
                return None
            raise

    def _optuna_tell(
        self, trial_id: int, number: int, values: list[float] | None, state: TrialState
    ) -> tuple[TrialState, list[float] | None]:
        """Optuna's tell, the outcome it stored.

        GridSampler calls ``Study.stop`` once its grid is exhausted, which Optuna only allows
        inside ``optimize``; Optuna stores the outcome anyway (in a ``finally``), whose refusal
        (``UpdateFinishedTrialError``, itself a RuntimeError, raised as it is) replaces the
        stop's error. So a plain RuntimeError means the outcome was stored: in ask-and-tell mode
        stopping is the parent's decision, and it is not an error."""
        try:
            told_state, told_values, _ = _tell_with_warning(
                self.study, number, values, state=state, suppress_warning=True
            )
        except UpdateFinishedTrialError:
            raise
        except RuntimeError:
            stored = self.storage.get_trial(trial_id)
            if not stored.state.is_finished():
                raise
            return stored.state, stored.values
        return told_state, told_values

    def report(self, trial: FrozenTrial, step: int, value: float) -> bool:
        """Store the value at ``step`` (as ``Trial.report``; a step reported twice keeps its
        first value), renew the trial's lease, and ask the pruner (``Trial.should_prune``)."""
        storage = self.storage
        with self._unless_finished(trial):
            if step not in trial.intermediate_values:
                storage.set_trial_intermediate_value(trial._trial_id, step, value)
                trial = storage.get_trial(trial._trial_id)
            leases.touch(storage, self.study_id, trial)  # a sign of life: renew a lease
        return bool(self.study.pruner.prune(self.study, trial))

    def add_trials(
        self, trials: list[FrozenTrial], stop: Callable[[list[int]], None] | None = None
    ) -> list[int]:
        """Store finished trials as they are (Optuna's ``add_trial``); their numbers.

        Optuna stores one trial per write and cannot take one back, so a storage that fails
        part-way, or a stop signal between two trials (``stop(numbers so far)`` runs before each
        trial and may raise), leaves the first trials stored: the error then says exactly which
        (``data.stored``: their numbers, in request order), so a retry sends only the rest and
        never stores a trial twice."""
        storage = self.storage
        numbers: list[int] = []
        for trial in trials:
            if stop is not None:
                stop(numbers)
            try:
                trial_id = storage.create_new_trial(self.study_id, template_trial=trial)
                numbers.append(storage.get_trial_number_from_id(trial_id))
            except Exception as exc:
                error = as_bridge_error(exc)
                error.data["stored"] = numbers
                error.message += f" ({len(numbers)} of {len(trials)} trials stored first)"
                raise error from exc
        return numbers

    # ---- leases of its trials ----------------------------------------------------------------

    def grant_lease(self, trial_id: int, lease_s: float, retry: int) -> float:
        return leases.grant(self.storage, trial_id, lease_s, retry)

    def clear_lease(self, trial_id: int) -> None:
        leases.clear(self.storage, trial_id)

    def renew_lease(self, trial: FrozenTrial, lease_s: float | None) -> float:
        """The new lease end; ``trial_finished`` if the trial was finished meanwhile, or its
        lease ended before the renew was written (the trial is failed then, never renewed)."""
        with self._unless_finished(trial):
            return leases.renew(self.storage, self.study_id, trial, lease_s)
