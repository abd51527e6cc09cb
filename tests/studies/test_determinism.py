"""Seeded studies give the same suggestions run after run, and across kill -9 and restart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker

SPACE = {
    "x": {"type": "float", "low": -4.0, "high": 4.0},
    "y": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
    "k": {"type": "int", "low": 0, "high": 6},
}
SAMPLERS: dict[str, dict[str, Any]] = {
    "random": {"type": "random", "seed": 3},
    "tpe": {"type": "tpe", "seed": 3, "n_startup_trials": 5},
    "cmaes": {"type": "cmaes", "seed": 3, "n_startup_trials": 3, "popsize": 4},
    "nsga2": {"type": "nsga2", "seed": 3, "population_size": 6},
}
N_TRIALS = 30
RESTART_EVERY = 7


def _objectives(params: dict[str, Any], n: int) -> list[float]:
    x, y, k = params["x"], params["y"], params["k"]
    first = (x - 1.0) ** 2 + math.log(y) ** 2 + k
    return [first] if n == 1 else [first, (x + 1.0) ** 2 + k / (1 + y)]


def _create(worker: Worker, sampler: dict[str, Any]) -> int:
    n = 2 if sampler["type"] == "nsga2" else 1
    directions = ["minimize"] * n
    worker.create(
        "det", directions=directions, sampler=sampler, search_space=SPACE, load_if_exists=True
    )
    return n


def _uninterrupted(url: str, sampler: dict[str, Any]) -> list[dict[str, Any]]:
    stream = []
    with Worker.spawn(url) as worker:
        n = _create(worker, sampler)
        for _ in range(N_TRIALS):
            (trial,) = worker.ask("det")
            worker.tell("det", trial.number, values=_objectives(trial.params, n))
            stream.append(trial.params)
    return stream


def _with_kills(url: str, sampler: dict[str, Any]) -> list[dict[str, Any]]:
    stream: list[dict[str, Any]] = []
    while len(stream) < N_TRIALS:
        worker = Worker.spawn(url)
        n = _create(worker, sampler)
        for _ in range(RESTART_EVERY):
            if len(stream) == N_TRIALS:
                break
            (trial,) = worker.ask("det")
            worker.tell("det", trial.number, values=_objectives(trial.params, n))
            stream.append(trial.params)
        worker.proc.kill()  # kill -9: no goodbye, the next worker starts from the storage
        worker.proc.wait()
    return stream


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_restarts_do_not_change_the_suggestions(name: str, tmp_path: Path) -> None:
    sampler = SAMPLERS[name]
    uninterrupted = _uninterrupted(f"sqlite:///{tmp_path}/a.db", sampler)
    restarted = _with_kills(f"sqlite:///{tmp_path}/b.db", sampler)
    assert len(set(map(str, uninterrupted))) > N_TRIALS // 2  # a real search, not a constant
    assert restarted == uninterrupted


def test_same_frames_give_byte_identical_replies() -> None:
    def run() -> list[bytes]:
        replies = []
        with Worker.spawn() as worker:
            worker.create(
                "s", sampler={"type": "tpe", "seed": 11, "n_startup_trials": 4}, search_space=SPACE
            )
            for _ in range(12):
                worker.send("ask", {"study": "s", "n": 2})
                payload = worker.read_payload()
                replies.append(payload)
                for trial in orjson.loads(payload)["result"]["trials"]:
                    worker.send(
                        "tell",
                        {
                            "study": "s",
                            "number": trial["number"],
                            "value": _objectives(trial["params"], 1)[0],
                        },
                    )
                    replies.append(worker.read_payload())
            worker.send("best", {"study": "s"})
            replies.append(worker.read_payload())
        return replies

    assert run() == run()


def test_in_memory_continuation_matches_after_import(tmp_path: Path) -> None:
    """The same guarantee through a snapshot: a fresh worker importing the study goes on with
    exactly the suggestions the original worker would have made."""
    sampler = SAMPLERS["tpe"]
    with Worker.spawn() as original:
        _create(original, sampler)
        for _ in range(10):
            (trial,) = original.ask("det")
            original.tell("det", trial.number, value=_objectives(trial.params, 1)[0])
        snapshot = original.export("det")
        expected = original.ask("det", n=5)
    with Worker.spawn() as fresh:
        fresh.import_(snapshot)
        assert fresh.ask("det", n=5) == expected
