"""Heartbeats for the trials this worker handed out, so a dead worker's trials can be failed.

Optuna records heartbeats from a thread while ``study.optimize`` runs an objective; in ask-and-tell
mode nothing does, so the worker keeps its own thread: every interval it records a heartbeat for
the trials it asked and has not yet seen told. When the worker dies the heartbeats stop, and after
the grace period any worker on the same storage fails those trials (``fail_stale_trials``, run
before every ``ask``) and, with ``--retry-failed``, asks their parameters again.

A trial is covered from the moment it is created, before its first heartbeat: the storages'
stale check (:mod:`bridge_worker.storage.handle`) counts a trial that never got a heartbeat from its
start time, so a kill between ``study.ask()`` and :meth:`HeartbeatKeeper.track` strands nothing.

On RDB storages a heartbeat is Optuna's own row per trial (updated in place). On a journal every
write is a record kept forever, so there the worker beats once per study per interval for all its
trials (:class:`~bridge_worker.storage._journal.JournalHeartbeatStorage`): each trial records which
worker owns it once, when asked.
"""

from __future__ import annotations

import threading
import time
import uuid

import structlog
from optuna.storages._heartbeat import BaseHeartbeat

from bridge_worker.storage.backend import WorkerHeartbeats

log = structlog.get_logger("bridge_worker.studies.heartbeat")


class HeartbeatKeeper:
    def __init__(self, target: BaseHeartbeat, interval: float) -> None:
        self._target = target
        self._interval = interval
        self.worker_id = uuid.uuid4().hex
        self._journal = target if isinstance(target, WorkerHeartbeats) else None
        self._running: dict[int, int] = {}
        """Trial id to study id, for every trial asked here and not yet told."""
        self._beaten: dict[int, float] = {}
        """Study id to the time of this worker's last heartbeat for it (journal)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()

    def track(self, study_id: int, trial_id: int) -> None:
        """Start beating for a trial just asked (its first heartbeat is recorded now)."""
        if self._journal is None:
            self._target.record_heartbeat(trial_id)
        else:
            self._journal.claim_trial(trial_id, self.worker_id)
            if time.monotonic() - self._beaten.get(study_id, -1e9) > self._interval / 2:
                self._beat_study(study_id)
        with self._lock:
            self._running[trial_id] = study_id

    def untrack(self, trial_id: int) -> None:
        with self._lock:
            self._running.pop(trial_id, None)

    def _beat_study(self, study_id: int) -> None:
        assert self._journal is not None
        self._journal.record_worker_heartbeat(study_id, self.worker_id)
        self._beaten[study_id] = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)  # a beat stuck in a hung storage must not delay exit

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._journal is None:
                    with self._lock:
                        trial_ids = sorted(self._running)
                    for trial_id in trial_ids:
                        self._target.record_heartbeat(trial_id)
                else:
                    with self._lock:
                        study_ids = sorted(set(self._running.values()))
                    for study_id in study_ids:
                        self._beat_study(study_id)
            except Exception as exc:  # a storage outage must not end the heartbeat thread
                log.warning("heartbeat_failed", error=repr(exc))
