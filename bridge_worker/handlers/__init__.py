"""The handlers of every method, one module per area; ``ALL`` is the closed command set.

A handler reads like the protocol: it takes its decoded params struct, calls the registry and the
served study (:mod:`bridge_worker.study`) and returns a result struct. Handlers never name a
private Optuna attribute and never import each other
(``tests/protocol/test_handler_boundaries.py``).
"""

from collections.abc import Callable
from typing import Any

from bridge_worker.handlers import (
    analysis,
    artifacts,
    attrs,
    checkpoints,
    control,
    figures,
    planning,
    pruning,
    recording,
    stopping,
    studies,
    trials,
    warm_start,
)

ALL: list[Callable[..., Any]] = [
    control.ping,
    control.shutdown,
    studies.create,
    studies.list_studies,
    studies.delete,
    trials.ask,
    trials.tell,
    trials.best,
    trials.trials,
    trials.renew,
    recording.add_trials,
    figures.plot,
    pruning.report,
    planning.enqueue,
    attrs.set_attrs,
    analysis.importance,
    checkpoints.export,
    checkpoints.import_,
    stopping.set_stop,
    warm_start.copy_trials,
    artifacts.artifact_put,
    artifacts.artifacts,
    artifacts.artifact_get,
]
