"""Heartbeats for the trials this worker handed out, so a dead worker's trials can be failed.

Optuna records heartbeats from a thread while ``study.optimize`` runs an objective; in ask-and-tell
mode nothing does, so the worker keeps its own thread: every interval it records a heartbeat for
each trial it asked and has not yet seen told. When the worker dies the heartbeats stop, and after
the grace period any worker on the same storage fails those trials (``fail_stale_trials``, run
before every ``ask``) and, with ``--retry-failed``, asks their parameters again.
"""

from __future__ import annotations

import threading

import structlog
from optuna.storages._heartbeat import BaseHeartbeat

log = structlog.get_logger("bridge_worker.heartbeat")


class HeartbeatKeeper:
    def __init__(self, target: BaseHeartbeat, interval: float) -> None:
        self._target = target
        self._interval = interval
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._thread.start()

    def track(self, trial_id: int) -> None:
        """Start beating for a trial just asked (its first heartbeat is recorded now)."""
        self._target.record_heartbeat(trial_id)
        with self._lock:
            self._running.add(trial_id)

    def untrack(self, trial_id: int) -> None:
        with self._lock:
            self._running.discard(trial_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                trial_ids = sorted(self._running)
            for trial_id in trial_ids:
                try:
                    self._target.record_heartbeat(trial_id)
                except Exception as exc:  # a storage outage must not end the heartbeat thread
                    log.warning("heartbeat_failed", trial_id=trial_id, error=repr(exc))
                    break
