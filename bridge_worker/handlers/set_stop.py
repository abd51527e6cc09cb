"""``set_stop``: change or clear a study's stop rules (:mod:`bridge_worker.studies.stopping`)."""

from __future__ import annotations

import msgspec

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.stopping import check_rules, rules_of, stopped_entry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.schema import SetStopParams, SetStopResult


@rpc_method("set_stop")
def set_stop(registry: StudyRegistry, params: SetStopParams) -> SetStopResult:
    """Replace the study's stop rules (null clears them: asking resumes at once)."""
    entry = registry.get(params.study)
    if params.stop is not None:
        check_rules(params.stop, entry.n_objectives, "$.params.stop")
    stop = msgspec.UNSET if params.stop is None else params.stop
    registry.reconfigure(entry, msgspec.structs.replace(entry.config, stop=stop))
    return SetStopResult(
        study=entry.name, stop=rules_of(entry.config), stopped=stopped_entry(entry)
    )
