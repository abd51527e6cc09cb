"""The handlers of every method, one module per area; ``ALL`` is the closed command set."""

from collections.abc import Callable
from typing import Any

from bridge_worker.handlers import (
    analysis,
    attrs,
    checkpoints,
    control,
    figures,
    planning,
    pruning,
    recording,
    studies,
    trials,
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
]
