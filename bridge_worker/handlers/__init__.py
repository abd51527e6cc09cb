"""The handlers of every method, one module per area; ``ALL`` is the closed command set."""

from collections.abc import Callable
from typing import Any

from bridge_worker.handlers import checkpoints, control, studies, trials

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
    checkpoints.export,
    checkpoints.import_,
]
