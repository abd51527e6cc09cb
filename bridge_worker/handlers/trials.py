"""Methods that ask for trials, tell their results and read them back."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.studies.convert import STATES_BY_NAME, trial_info
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.stopping import stopped_entry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import (
    BridgeError,
    ErrorKind,
)
from bridge_worker.wire.schema import (
    AskParams,
    AskResult,
    BestParams,
    RenewParams,
    RenewResult,
    TellParams,
    TellResult,
    TrialsParams,
    TrialsResult,
)


@rpc_method("ask")
def ask(registry: StudyRegistry, params: AskParams) -> AskResult:
    return registry.ask(params)


@rpc_method("tell")
def tell(registry: StudyRegistry, params: TellParams) -> TellResult:
    return registry.tell(params)


@rpc_method("best", reads_only=True)
def best(registry: StudyRegistry, params: BestParams) -> TrialsResult:
    """The best trial (one objective) or the Pareto front (several)."""
    entry = registry.reading(params.study)
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
        metric_names=entry.metric_names(),
        stopped=stopped_entry(entry),
    )


@rpc_method("trials", reads_only=True)
def trials(registry: StudyRegistry, params: TrialsParams) -> TrialsResult:
    """The study's trials in number order; ``offset``/``limit`` give one page of them (a reply
    over ``--max-reply-bytes`` is refused, so a parent pages a large study)."""
    entry = registry.reading(params.study)
    states = None if params.states is UNSET else tuple(STATES_BY_NAME[s] for s in params.states)
    study = entry.study
    found = study.get_trials(deepcopy=False, states=states)
    end = None if params.limit is UNSET else params.offset + params.limit
    page = found[params.offset : end]
    return TrialsResult(
        trials=[trial_info(t, params.datetimes) for t in page],
        metric_names=entry.metric_names(),
    )


@rpc_method("renew")
def renew(registry: StudyRegistry, params: RenewParams) -> RenewResult:
    """Extend a running trial's lease from now (by ``lease_s`` or by its own length)."""
    return registry.renew(params)
