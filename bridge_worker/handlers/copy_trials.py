"""``copy_trials``: warm-start a study with the trials of another (:mod:`..warm_start`)."""

from __future__ import annotations

from msgspec import UNSET

from bridge_worker.studies.convert import STATES_BY_NAME
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.warm_start import copies
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import BridgeError, ErrorKind
from bridge_worker.wire.schema import MAX_COPIED_TRIALS, CopyTrialsParams, CopyTrialsResult


@rpc_method("copy_trials")
def copy_trials(registry: StudyRegistry, params: CopyTrialsParams) -> CopyTrialsResult:
    """All or nothing: every selected trial is checked before the first copy is written."""
    source = registry.get(params.from_)
    target = registry.get(params.to)
    states = tuple(STATES_BY_NAME[s] for s in params.states)
    selected = source.study.get_trials(deepcopy=False, states=states)
    if params.limit is not UNSET:
        selected = selected[: params.limit]
    elif len(selected) > MAX_COPIED_TRIALS:
        raise BridgeError(
            ErrorKind.LIMIT_EXCEEDED,
            f"{len(selected)} trials to copy, at most {MAX_COPIED_TRIALS} per call: give limit",
            limit="max_copied_trials",
            value=len(selected),
            max=MAX_COPIED_TRIALS,
        )
    made, skipped = copies(
        selected, source.name, target.distributions, target.n_objectives, params.params_only
    )
    numbers = target.add_trials(made)
    return CopyTrialsResult(copied=len(numbers), skipped=skipped, numbers=numbers)
