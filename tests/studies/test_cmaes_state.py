"""CMA-ES's saved optimizer is read by an allow-list unpickler: a pickle planted in the storage
(by anyone with write access to it or to the proxy) does not run code in the worker."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

import optuna
import pytest

from bridge_worker.client import Worker

pytest.importorskip("cmaes")

SPACE = {
    "x": {"type": "float", "low": -1.0, "high": 1.0},
    "y": {"type": "float", "low": -1.0, "high": 1.0},
}


class _Planted:
    """What an attacker stores: unpickling it calls os.mkdir(marker)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_a_planted_pickle_in_the_cmaes_state_does_not_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    marker = tmp_path / "pwned"
    with Worker.spawn(url) as worker:
        worker.create(
            "s", search_space=SPACE, sampler={"type": "cmaes", "seed": 1, "n_startup_trials": 1}
        )
        for _ in range(10):  # more than one generation (popsize 6)
            (trial,) = worker.ask("s")
            worker.tell("s", trial.number, value=float(trial.params["x"]))  # type: ignore[arg-type]
        own = worker._stderr_tail
        assert own is not None
        # the attacker rewrites the last trial's saved optimizer in the storage
        storage = optuna.storages.RDBStorage(url)
        study_id = storage.get_study_id_from_name("s")
        saved = [
            t
            for t in storage.get_all_trials(study_id)
            if any(":optimizer" in k for k in t.system_attrs)
        ]
        assert saved  # CMA-ES did save its state
        last = saved[-1]  # the one the next ask restores
        keys = [k for k in last.system_attrs if ":optimizer" in k]
        storage.engine.dispose()
        payload = pickle.dumps(_Planted(str(marker))).hex()
        with sqlite3.connect(tmp_path / "s.db") as db:  # as anyone with write access can
            for i, key in enumerate(sorted(keys)):
                db.execute(
                    "UPDATE trial_system_attributes SET value_json = ? "
                    "WHERE trial_id = ? AND key = ?",
                    (json.dumps(payload if i == 0 else ""), last._trial_id, key),
                )
    # the optimizer CMA-ES saved itself was restored without a word: read to the exited worker's
    # end of stderr (a look after a fixed 2 s could miss a line a loaded machine had not yet
    # written, and so could the one below)
    assert not any('"cmaes_state_refused"' in line for line in own.last(timeout=60))
    with Worker.spawn(url) as victim:  # the next worker to ask restores the optimizer
        (trial,) = victim.ask("s")
        victim.tell("s", trial.number, value=0.0)
        assert not marker.exists(), "the planted pickle ran in the worker"
        tail = victim._stderr_tail
        assert tail is not None
    assert any('"cmaes_state_refused"' in line for line in tail.last(timeout=60))
