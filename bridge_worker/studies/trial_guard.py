"""A request that fails leaves no trial behind.

Optuna creates a trial first and finds out afterwards that it cannot fill it: a parameter sampled
before from another kind of distribution (``Cannot set different distribution kind``), categorical
choices that changed (``does not support dynamic value space``), a grid without a parameter, a
CMA-ES ``x0`` that is not a point of the space. Each was an ``internal_error`` and a RUNNING trial
nobody would ever tell (kept alive forever by ``--heartbeat``).

Two rules, both in this module:

* **Check before creating.** :func:`check_ask` and :func:`check_sampler_space` refuse, as
  ``invalid_params`` naming the field and the conflicting distribution, every request whose trial
  Optuna could not fill. A study's earlier distributions are read once per study and parameter name
  (:class:`SeenDistributions`), so asks that repeat a known space cost a few dict lookups.
* **Fail what was created, in one place.** Should anything still go wrong after a trial exists (a
  race with another worker, a sampler's own fault), :func:`abandon` fails every trial the request
  created before the error is answered; an enqueued trial the request had taken from the queue
  goes back to the queue when it got no parameter yet, so no enqueued point is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec
import structlog
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bridge_worker.studies.space import check_value, to_spec
from bridge_worker.wire.errors import BridgeError, invalid_params
from bridge_worker.wire.schema import CmaEsSamplerSpec, GridSamplerSpec, JsonScalar, SamplerSpec

_log = structlog.get_logger("bridge_worker.studies.trial_guard")

ABANDONED_ATTR = "bridge:abandoned"
"""System attr of a trial failed because the request that created it failed (the error's text)."""


@dataclass(slots=True)
class SeenDistributions:
    """The distribution each parameter of a study was first sampled from (what Optuna checks a
    new one against), learnt from the storage once per name this worker has not met yet."""

    known: dict[str, BaseDistribution] = field(default_factory=dict)

    def lookup(
        self, storage: BaseStorage, study_id: int, names: Iterable[str]
    ) -> dict[str, BaseDistribution]:
        """The earlier distribution of each of ``names`` that the study has one for."""
        names = list(names)
        if any(name not in self.known for name in names):
            for trial in storage.get_all_trials(study_id, deepcopy=False):
                for name, distribution in trial.distributions.items():
                    self.known.setdefault(name, distribution)
        return {name: self.known[name] for name in names if name in self.known}

    def learn(self, distributions: Mapping[str, BaseDistribution]) -> None:
        for name, distribution in distributions.items():
            self.known.setdefault(name, distribution)


def describe(distribution: BaseDistribution) -> str:
    """A distribution as a person reads it: ``float log [0.001, 1.0]``, ``categorical [...]``."""
    if isinstance(distribution, CategoricalDistribution):
        return f"categorical with choices {list(distribution.choices)!r}"
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        kind = "float" if isinstance(distribution, FloatDistribution) else "int"
        log = " log" if distribution.log else ""
        return f"{kind}{log} [{distribution.low}, {distribution.high}]"
    return repr(distribution)


def _conflict(
    name: str, old: BaseDistribution, new: BaseDistribution, field: str, earlier: str
) -> None:
    try:
        check_distribution_compatibility(old, new)
    except ValueError:
        raise invalid_params(
            f"{field}.{name}",
            f"{name!r} is {describe(old)} in {earlier}, so it cannot be {describe(new)} here "
            "(a parameter keeps its kind and log setting, a categorical one its choices)",
            conflicting_distribution=msgspec.to_builtins(to_spec(old)),
        ) from None


def check_ask(
    own: Mapping[str, BaseDistribution],
    extra: Mapping[str, BaseDistribution],
    fixed_params: Mapping[str, JsonScalar],
    sampler: SamplerSpec | None,
    seen: SeenDistributions,
    storage: BaseStorage,
    study_id: int,
    field: str = "$.params.search_space",
) -> None:
    """Refuse a per-ask ``extra`` space (and ``fixed_params``) Optuna could not sample for this
    study: a parameter of the study's own space given another kind or other choices, a new name
    sampled earlier from an incompatible distribution, a name a grid has no values for, a number
    a CMA-ES ``x0`` has no start for."""
    if not extra and not isinstance(sampler, GridSamplerSpec):
        return
    new_names = [name for name in extra if name not in own]
    earlier = seen.lookup(storage, study_id, new_names) if new_names else {}
    for name, distribution in extra.items():
        if name in own:
            _conflict(name, own[name], distribution, field, "the study's search space")
        elif name in earlier:
            _conflict(name, earlier[name], distribution, field, "the study's earlier trials")
    if isinstance(sampler, GridSamplerSpec):
        for name, distribution in {**own, **extra}.items():
            if name in fixed_params:
                continue
            where = f"{field}.{name}" if name in extra else "$.params.study"
            if name not in sampler.search_space:
                raise invalid_params(where, f"the study's grid has no values for {name!r}")
            _check_grid_values(sampler, name, distribution, where)
    if isinstance(sampler, CmaEsSamplerSpec) and isinstance(sampler.x0, dict):
        for name, distribution in extra.items():
            numeric = not isinstance(distribution, CategoricalDistribution)
            if numeric and name not in sampler.x0:
                raise invalid_params(
                    f"{field}.{name}", f"the study's CMA-ES x0 has no start value for {name!r}"
                )


def check_enqueue(
    sampler: SamplerSpec | None,
    own: Mapping[str, BaseDistribution],
    params: Mapping[str, JsonScalar],
) -> None:
    """A grid samples nothing for an enqueued trial (Optuna's GridSampler only fills a trial it
    picked a grid point for), so an enqueued trial of a grid study must give every parameter."""
    if isinstance(sampler, GridSamplerSpec):
        missing = sorted(set(own) - set(params))
        if missing:
            raise invalid_params(
                "$.params.params",
                f"a grid study's enqueued trial must give every parameter; missing {missing}",
            )


def check_sampler_space(
    sampler: SamplerSpec | None,
    space: Mapping[str, BaseDistribution],
    field: str = "$.params.sampler",
) -> None:
    """Refuse at ``create`` a sampler that cannot sample the study's own space: a grid without
    values for one of its parameters, a CMA-ES ``x0`` that is not a point of the space."""
    if isinstance(sampler, GridSamplerSpec):
        for name, distribution in space.items():
            if name not in sampler.search_space:
                raise invalid_params(
                    f"{field}.search_space", f"the grid has no values for parameter {name!r}"
                )
            _check_grid_values(sampler, name, distribution, f"{field}.search_space.{name}")
    if isinstance(sampler, CmaEsSamplerSpec) and isinstance(sampler.x0, dict):
        for name, value in sampler.x0.items():
            if name not in space:
                raise invalid_params(f"{field}.x0.{name}", f"{name!r} is not in the search space")
            distribution = space[name]
            if isinstance(distribution, (FloatDistribution, IntDistribution)) and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise invalid_params(f"{field}.x0.{name}", f"x0 of {name!r} must be a number")
            check_value(distribution, value, f"{field}.x0.{name}")
        for name, distribution in space.items():
            if not isinstance(distribution, CategoricalDistribution) and name not in sampler.x0:
                raise invalid_params(
                    f"{field}.x0",
                    f"x0 needs a start value for every numeric parameter: {name!r} has none",
                )


def _check_grid_values(
    sampler: GridSamplerSpec, name: str, distribution: BaseDistribution, field: str
) -> None:
    """A grid value must be a number for a numeric parameter and one of a categorical
    parameter's choices (Optuna raises on any other; a number outside a numeric range it only
    warns about, and uses)."""
    if not isinstance(distribution, CategoricalDistribution):
        for value in sampler.search_space[name]:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise invalid_params(field, f"the grid value {value!r} of {name!r} is not a number")
        return
    for value in sampler.search_space[name]:
        try:
            check_value(distribution, value, field)
        except BridgeError:
            raise invalid_params(
                field,
                f"the grid value {value!r} of {name!r} is not one of its choices "
                f"{list(distribution.choices)!r}",
            ) from None


@dataclass(slots=True)
class Created:
    """A trial a request made (or took from the queue) before it failed."""

    trial_id: int
    popped: bool


def abandon(storage: BaseStorage, created: Iterable[Created], error: BaseException) -> None:
    """Leave nothing RUNNING behind a failed request: a trial it took from the queue goes back to
    it while it has no parameter; any other is failed, its system attr ``bridge:abandoned``
    saying why. Best effort: a storage that fails here too is logged, the request's own error is
    what the parent gets."""
    reason = f"{type(error).__name__}: {error}"[:500]
    for trial in created:
        try:
            stored = storage.get_trial(trial.trial_id)
            if stored.state != TrialState.RUNNING:
                continue
            if trial.popped and not stored.params:
                storage.set_trial_state_values(trial.trial_id, TrialState.WAITING)
                continue
            storage.set_trial_system_attr(trial.trial_id, ABANDONED_ATTR, reason)
            storage.set_trial_state_values(trial.trial_id, TrialState.FAIL)
        except Exception as exc:
            _log.warning(
                "abandon_failed", trial_id=trial.trial_id, error=f"{type(exc).__name__}: {exc}"
            )
