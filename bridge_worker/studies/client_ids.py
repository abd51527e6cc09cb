"""Client ids (OSS Vizier's ``client_id``): a restarted parent gets back its own pending trials.

``ask`` with ``client`` stores the id with each trial it starts (trial system attr
``optuna_bridge:client``). The first ``ask`` of a study by a client in this worker process looks
for trials of that client still RUNNING in the storage (a parent that died between ask and tell,
now restarted with a new worker) and hands them out again, first, with ``resumed``. A trial whose
lease ended is no longer the client's (the lease keeper fails it). Later asks by the same client
in this process only serve what is left of that list: a parent talks to one worker for its whole
life, so the trials this process handed out are the ones the parent holds now, and a concurrent
parent (several trials running at once) never gets its own running trial twice.

Cost: one read of the study's running trials at the first ``ask`` per (study, client) in a
worker's life, and one trial attr write per trial asked with ``client``.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from bridge_worker.studies.leases import lease_of

CLIENT_ATTR = "optuna_bridge:client"
"""Trial system attr holding the id of the client that asked the trial."""


def client_of(trial: FrozenTrial) -> str | None:
    client = trial.system_attrs.get(CLIENT_ATTR)
    return client if isinstance(client, str) else None


def is_clients(trial: FrozenTrial, client: str, now: float) -> bool:
    """A trial the client holds: running, asked by it, without an ended lease."""
    if trial.state != TrialState.RUNNING or client_of(trial) != client:
        return False
    lease = lease_of(trial)
    return lease is None or lease.end > now


def set_client(storage: BaseStorage, trial_id: int, client: str | None) -> None:
    storage.set_trial_system_attr(trial_id, CLIENT_ATTR, client)


def pop_waiting(storage: BaseStorage, study_id: int, client: str | None) -> int | None:
    """Optuna's ``Study._pop_waiting_trial_id`` (the first enqueued trial this worker wins),
    with the client id written *before* the pop: a worker killed right after the pop leaves a
    RUNNING trial its client finds again, never one of nobody's.

    Another worker may write its own client id on the same waiting trial meanwhile, and win or
    lose the pop: the winner reads the trial back and writes its id again if it is not there
    (popped without a client, a trial a loser named is made nobody's again). Enqueued trials are
    few; the read is paid only for them.
    """
    for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = waiting._trial_id
        try:
            if client is not None and client_of(waiting) != client:
                set_client(storage, trial_id, client)
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        if client_of(storage.get_trial(trial_id)) != client:
            set_client(storage, trial_id, client)
        return trial_id
    return None


def asked_by(client: str | None) -> FrozenTrial | None:
    """The template of a new RUNNING trial that already names its client (``None`` without a
    client: Optuna's own new trial), so the trial and its client id are one write."""
    if client is None:
        return None
    return FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={CLIENT_ATTR: client},
        intermediate_values={},
        trial_id=-1,
    )


@dataclass(slots=True)
class ClientTrials:
    """Per worker process: which (study, client) pairs were looked up, and the trials found
    then that were not handed out yet (trial ids, in number order)."""

    _pending: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    def take(self, storage: BaseStorage, study_id: int, client: str, n: int) -> list[FrozenTrial]:
        """Up to ``n`` of the client's pending trials of the study, each still the client's."""
        key = (study_id, client)
        pending = self._pending.get(key)
        if pending is None:
            now = time.time()
            running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            pending = [t._trial_id for t in running if is_clients(t, client, now)]
            self._pending[key] = pending
        taken: list[FrozenTrial] = []
        while pending and len(taken) < n:
            trial = storage.get_trial(pending.pop(0))
            if is_clients(trial, client, time.time()):
                taken.append(trial)
        return taken

    def forget(self, study_id: int) -> None:
        for key in [k for k in self._pending if k[0] == study_id]:
            del self._pending[key]
