"""The handlers of every method, one module per area; ``ALL`` is the closed command set."""

from bridge_worker.handlers import control, studies, trials

ALL = [
    control.ping,
    control.shutdown,
    studies.create,
    studies.list_studies,
    studies.delete,
    trials.ask,
    trials.tell,
    trials.best,
    trials.trials,
]
