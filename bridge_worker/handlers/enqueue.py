"""``enqueue``: parameters the parent wants evaluated next (a known good point, a baseline)."""

from __future__ import annotations

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.trial_guard import check_enqueue
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.schema import EnqueueParams, EnqueueResult


@rpc_method("enqueue")
def enqueue(registry: StudyRegistry, params: EnqueueParams) -> EnqueueResult:
    """Optuna's ``enqueue_trial``: the next ``ask`` returns these parameters, enqueued trials in
    order, and the sampler fills in any parameter left out.

    Every parameter must be in the study's search space, with a value its distribution
    contains, so a typo is an error rather than a silently ignored value.
    """
    entry = registry.get(params.study)
    registry.limits.check_user_attrs(params.user_attrs, "$.params.user_attrs")
    entry.check_params(params.params, "$.params.params")
    check_enqueue(entry.config.sampler, entry.distributions, params.params)
    registry.limits.check_user_attrs(params.user_attrs, "$.params.user_attrs")
    before = entry.n_trials()
    entry.study.enqueue_trial(
        dict(params.params), user_attrs=params.user_attrs, skip_if_exists=params.skip_if_exists
    )
    return EnqueueResult(enqueued=entry.n_trials() > before)
