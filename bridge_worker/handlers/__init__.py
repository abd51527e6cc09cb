"""The handlers of every method, in a module named after the method (or after the area, where a
module holds several); ``ALL`` is the closed command set.

A handler reads like the protocol: it takes its decoded params struct, calls the registry and the
served study (:mod:`bridge_worker.studies.study`) and returns a result struct. Handlers never name a
private Optuna attribute and never import each other
(``tests/protocol/test_handler_boundaries.py``).
"""

from collections.abc import Callable
from typing import Any

from bridge_worker.handlers import (
    add_trials,
    artifacts,
    checkpoints,
    control,
    copy_trials,
    enqueue,
    importance,
    plot,
    report,
    set_attrs,
    set_stop,
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
    add_trials.add_trials,
    plot.plot,
    report.report,
    enqueue.enqueue,
    set_attrs.set_attrs,
    importance.importance,
    checkpoints.export,
    checkpoints.import_,
    set_stop.set_stop,
    copy_trials.copy_trials,
    artifacts.artifact_put,
    artifacts.artifacts,
    artifacts.artifact_get,
]
