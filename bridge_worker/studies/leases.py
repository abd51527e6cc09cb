"""Trial leases: a trial asked with ``lease_s`` is failed unless told, reported or renewed in time.

Heartbeats (``--heartbeat``) catch a dead *worker*; a lease catches a dead *evaluator* while the
worker lives (an Elixir Task that crashed, a shell loop that was killed): the parent promises to
``tell``, ``report`` or ``renew`` within ``lease_s`` seconds, and when it does not the worker fails
the trial itself and, with ``retry``, enqueues its parameters so a later ``ask`` serves them again.

The lease is stored with the trial (a trial system attr holding the lease length, its end as UNIX
time and the retry budget), so it survives a worker restart on a durable storage and every worker
sharing the study honours it: whichever worker notices an ended lease first fails the trial, and
only the one whose fail succeeded enqueues the retry (the storage refuses to finish a trial twice).

:class:`LeaseKeeper` is a thread that sweeps the studies this worker serves. A study is swept at
its earliest lease end (known at once for leases this worker granted). On a shared storage (any
but ``memory``) other workers may grant leases too, so a study that uses leases is also swept
every :data:`RECHECK_S` seconds and any other served study every :data:`IDLE_RECHECK_S`; on
``memory`` only this worker grants leases, so a study is swept only while it has one. The thread
runs only while there is something to sweep.
Only the storage is touched from the thread (never a Study or its sampler, which are not
thread-safe); Optuna's storages are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from bridge_worker.storage.writers import writer_alive, writer_record
from bridge_worker.wire.errors import invalid_params

log = structlog.get_logger("bridge_worker.studies.leases")

LEASE_ATTR = "optuna_bridge:lease"
"""Trial system attr: ``{"s": lease length, "end": UNIX time, "retry": budget}``."""

RECHECK_S = 0.5
"""How often a study known to use leases is swept for leases other workers granted."""

IDLE_RECHECK_S = 2.0
"""How often a served study where no lease was seen yet is swept (a restarted worker, or one
sharing a study with workers that grant leases, finds them within this)."""

EXPIRED_ATTR = "optuna_bridge:lease_expired"
"""Trial system attr written just before a trial is failed for an ended lease: the failing
process (so a retry it was killed before enqueueing is recovered)."""

_NOT_COPIED_TO_RETRY = (LEASE_ATTR, EXPIRED_ATTR, "optuna_bridge:heartbeat", "optuna_bridge:client")
"""A retry is anyone's trial: it keeps neither the lease nor the client of the failed one."""


class Lease(msgspec.Struct, frozen=True):
    s: float
    end: float
    retry: int = 0


def lease_of(trial: FrozenTrial) -> Lease | None:
    """The lease of a running trial (None for a trial without one, or a finished one)."""
    if trial.state != TrialState.RUNNING:
        return None
    raw = trial.system_attrs.get(LEASE_ATTR)
    if not isinstance(raw, dict):
        return None
    try:
        return msgspec.convert(raw, Lease)
    except msgspec.ValidationError:
        return None


def grant(storage: BaseStorage, trial_id: int, lease_s: float, retry: int) -> float:
    """Give a just-asked trial its lease; returns the lease end (UNIX time)."""
    end = time.time() + lease_s
    storage.set_trial_system_attr(trial_id, LEASE_ATTR, _record(Lease(lease_s, end, retry)))
    return end


class LeaseEnded(Exception):
    """A renew came after the trial's lease ended: the trial was failed (by this renew, or by
    whichever worker got there first), never renewed."""


def renew(storage: BaseStorage, study_id: int, trial: FrozenTrial, lease_s: float | None) -> float:
    """Extend a running trial's lease from now, by ``lease_s`` or by its own length.

    A trial asked without a lease gets one when ``lease_s`` is given (``retry`` 0).

    A renew is acknowledged only if its write landed before the old lease ended. Any worker's
    sweep fails a trial only after reading an ended lease, so a sweep that could fail the
    trial either read the new lease (and keeps the trial) or read the old one after it ended,
    which this renew sees too: then the renew expires the trial itself (one compare-and-set;
    whoever wins enqueues the retry) and raises :class:`LeaseEnded`, so no renew is ever
    acknowledged while a sweep fails the trial. (Across hosts this assumes clocks in step.)
    """
    current = lease_of(trial)
    if current is None and lease_s is None:
        raise invalid_params(
            "$.params.lease_s", f"trial {trial.number} has no lease; give lease_s to start one"
        )
    if current is not None and current.end <= time.time():
        expire_one(storage, study_id, trial, current)
        raise LeaseEnded
    length = lease_s if lease_s is not None else current.s  # type: ignore[union-attr]
    end = time.time() + length
    lease = Lease(length, end, current.retry if current is not None else 0)
    storage.set_trial_system_attr(trial._trial_id, LEASE_ATTR, _record(lease))
    if current is not None and current.end <= time.time():  # written too late to count
        expire_one(storage, study_id, trial, current)
        raise LeaseEnded
    return end


def clear(storage: BaseStorage, trial_id: int) -> None:
    """Drop a lease a trial inherited from the trial it retries (asked now without a lease).
    Optuna cannot delete a system attr; a lease of ``None`` is no lease."""
    storage.set_trial_system_attr(trial_id, LEASE_ATTR, None)


def touch(storage: BaseStorage, study_id: int, trial: FrozenTrial) -> None:
    """Any sign of life (``report``) renews a leased trial by its own length."""
    if lease_of(trial) is not None:
        renew(storage, study_id, trial, None)


def expire(storage: BaseStorage, study_id: int, now: float | None = None) -> float | None:
    """Fail the study's running trials whose lease ended (and enqueue their retries).

    Returns the earliest lease end still pending, or None when no running trial has a lease.
    """
    now = time.time() if now is None else now
    pending: float | None = None
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        lease = lease_of(trial)
        if lease is None:
            continue
        if lease.end > now:
            pending = lease.end if pending is None else min(pending, lease.end)
            continue
        expire_one(storage, study_id, trial, lease)
    return pending


def expire_one(storage: BaseStorage, study_id: int, trial: FrozenTrial, lease: Lease) -> bool:
    """Fail one running trial whose lease ended, and enqueue its retry; False when the trial
    was finished meanwhile (told, or failed by another worker that got there first).

    The fail is a compare-and-set on the trial's state (the storage refuses to finish a trial
    twice), so exactly one worker enqueues the retry. Before it, the trial is marked
    (:data:`EXPIRED_ATTR`, naming this process): a worker killed between the fail and the
    enqueue leaves a marked failed trial without retry, which :func:`recover_retries` finds.
    """
    trial_id = trial._trial_id
    try:
        storage.set_trial_system_attr(trial_id, EXPIRED_ATTR, writer_record())
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    log.info("lease_expired", study_id=study_id, number=trial.number, lease_s=lease.s)
    if lease.retry:
        _enqueue_retry(storage, study_id, trial, lease.retry)
    return True


def recover_retries(storage: BaseStorage, study_id: int) -> int:
    """Enqueue the retries a killed worker owed: trials it failed for an ended lease (marked
    :data:`EXPIRED_ATTR` by a process that is gone, or by this one, which is not at work on
    one while this runs) whose retry it did not enqueue. Returns how many were enqueued."""
    trials = storage.get_all_trials(study_id, deepcopy=False)
    retried = {
        history[-1]
        for t in trials
        if isinstance(history := t.system_attrs.get("retry_history"), list) and history
    }
    done = 0
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in retried:
            continue
        marker = trial.system_attrs.get(EXPIRED_ATTR)
        raw = trial.system_attrs.get(LEASE_ATTR)
        if marker is None or not isinstance(raw, dict) or writer_alive(marker):
            continue
        try:
            lease = msgspec.convert(raw, Lease)
        except msgspec.ValidationError:
            continue
        if lease.retry and _enqueue_retry(storage, study_id, trial, lease.retry):
            log.warning("lease_retry_recovered", study_id=study_id, number=trial.number)
            done += 1
    return done


def _enqueue_retry(storage: BaseStorage, study_id: int, trial: FrozenTrial, budget: int) -> bool:
    """Ask the failed trial's parameters again, as Optuna's ``RetryFailedTrialCallback`` does
    (same ``failed_trial`` / ``retry_history`` system attrs), at most ``budget`` times."""
    system_attrs: dict[str, Any] = {
        k: v for k, v in trial.system_attrs.items() if k not in _NOT_COPIED_TO_RETRY
    }
    history = [*system_attrs.get("retry_history", []), trial.number]
    if len(history) > budget:
        return False
    system_attrs.setdefault("failed_trial", trial.number)
    system_attrs["retry_history"] = history
    distributions: dict[str, BaseDistribution] = dict(trial.distributions)
    storage.create_new_trial(
        study_id,
        template_trial=create_trial(
            state=TrialState.WAITING,
            params=dict(trial.params),
            distributions=distributions,
            user_attrs=dict(trial.user_attrs),
            system_attrs=system_attrs,
        ),
    )
    return True


def _record(lease: Lease) -> dict[str, Any]:
    return {"s": lease.s, "end": lease.end, "retry": lease.retry}


class LeaseKeeper:
    """The thread that fails trials whose lease ended, in the studies this worker serves."""

    def __init__(self, storage: Callable[[], BaseStorage], shared: bool = True) -> None:
        self._storage = storage
        self._shared = shared
        """Other processes may grant leases in this storage (anything but ``memory``)."""
        self._due: dict[int, float] = {}
        """Study id -> when to sweep it next (UNIX time)."""
        self._leased: set[int] = set()
        self._recovered: set[int] = set()
        """Studies whose owed retries this process has recovered (:func:`recover_retries`)."""
        """Studies where a lease was granted or seen: swept every RECHECK_S."""
        self._lock = threading.Lock()
        self._sweeping = threading.Lock()
        """Held while a sweep fails trials and enqueues their retries, so an ``ask`` never
        slips in between (it would get a fresh trial while the retry is not yet enqueued)."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, study_id: int, at: float | None = None) -> None:
        """Sweep this study: at ``at`` (a lease end just granted or renewed, or now for a study
        that may hold leases), or, for a study just served (``at`` None), soon and then
        regularly when other workers may grant leases in it."""
        if at is None and not self._shared:
            return
        when = time.time() if at is None else at
        with self._lock:
            if at is not None:
                self._leased.add(study_id)
            self._due[study_id] = min(self._due.get(study_id, when), when)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()
        self._wake.set()

    def forget(self, study_id: int) -> None:
        with self._lock:
            self._due.pop(study_id, None)
            self._leased.discard(study_id)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def sweep_if_due(self, study_id: int) -> None:
        """Before an ``ask``: expire the study's ended leases now, so their retries are served by
        this very ask. Costs nothing for a study without leases or before its next lease end.

        The first ask of a study in this process also enqueues the retries a killed worker
        owed (:func:`recover_retries`), so a kill between a lease's fail and its retry's
        enqueue loses nothing."""
        if (
            study_id in self._recovered
            and study_id not in self._leased
            and not self._sweeping.locked()
        ):
            return  # lock-free for a study that never had a lease here (nothing to wait for)
        with self._sweeping:  # a sweep in progress finishes first
            if study_id not in self._recovered:
                try:
                    recover_retries(self._storage(), study_id)
                except KeyError:  # deleted by another worker: the ask itself will say so
                    return
                self._recovered.add(study_id)
            now = time.time()
            with self._lock:
                due = study_id in self._leased and self._due.get(study_id, now + 1) <= now
            if due:
                try:
                    pending = expire(self._storage(), study_id, now)
                except KeyError:  # deleted by another worker: the ask itself will say so
                    self.forget(study_id)
                    return
                self._plan(study_id, pending, now)

    def sweep_before_reading(self, study_id: int) -> None:
        """Before ``trials``, ``best``, ``list``: expire the study's ended leases now if a sweep is
        due (a lease end this worker knows of, or a study it has not swept yet, as after a
        restart), so a reader sees a trial whose lease ended as failed at its deadline, not at
        the thread's next sweep. Leases other workers grant are seen within ``RECHECK_S``.
        Costs a dict lookup when no sweep is due."""
        with self._lock:
            due = self._due.get(study_id)
        if due is None or due > time.time():
            return
        with self._sweeping:
            now = time.time()
            with self._lock:
                due = self._due.get(study_id)
            if due is None or due > now:  # the thread swept it meanwhile
                return
            try:
                pending = expire(self._storage(), study_id, now)
            except KeyError:
                self.forget(study_id)
                return
            self._plan(study_id, pending, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            now = time.time()
            with self._lock:
                if not self._due:  # nothing to sweep: end; the next watch starts a new thread
                    self._thread = None
                    return
                due = [sid for sid, when in self._due.items() if when <= now]
                wait = min((w for w in self._due.values() if w > now), default=now + 60) - now
            for study_id in due:
                self._sweep_quietly(study_id)
            if not due:
                self._wake.wait(max(0.0, min(wait, RECHECK_S)))

    def _sweep_quietly(self, study_id: int) -> None:
        started = time.time()
        try:
            with self._sweeping:
                pending = expire(self._storage(), study_id, started)
        except KeyError:  # the study was deleted
            self.forget(study_id)
            return
        except Exception as exc:  # a storage outage must not end the thread; try again later
            log.warning("lease_sweep_failed", study_id=study_id, error=repr(exc))
            pending = None
        self._plan(study_id, pending, started)

    def _plan(self, study_id: int, pending: float | None, started: float) -> None:
        """Next sweep: the earliest pending lease end, else a recheck; a lease granted while
        the sweep ran (a due time after ``started``) is kept if it is earlier."""
        with self._lock:
            current = self._due.get(study_id)
            if current is None:
                return
            if pending is not None:
                self._leased.add(study_id)
            elif not self._shared and current <= started:  # no lease left, none can appear
                del self._due[study_id]
                self._leased.discard(study_id)
                return
            recheck = RECHECK_S if study_id in self._leased else IDLE_RECHECK_S
            next_due = time.time() + recheck
            if pending is not None:
                next_due = min(next_due, pending)
            self._due[study_id] = min(next_due, current) if current > started else next_due
