"""Many workers on one PostgreSQL study, and a database that goes away under a running worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bridge_worker.client import Worker, WorkerError
from tests.servers import PostgresServer

SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "y": {"type": "int", "low": -5, "high": 5},
}


def _optimize(url: str, n_trials: int) -> list[int]:
    numbers = []
    with Worker.spawn(url) as worker:
        worker.create(
            "shared",
            search_space=SPACE,
            load_if_exists=True,
            sampler={"type": "tpe", "constant_liar": True, "n_startup_trials": 10},
        )
        for _ in range(n_trials):
            (trial,) = worker.ask("shared")
            x, y = trial.params["x"], trial.params["y"]
            assert isinstance(x, float) and isinstance(y, int)
            worker.tell("shared", trial.number, value=x * x + y * y)
            numbers.append(trial.number)
    return numbers


def test_four_workers_share_one_study(postgres_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        per_worker = list(pool.map(_optimize, [postgres_url] * 4, [100] * 4))
    numbers = [n for numbers in per_worker for n in numbers]
    assert sorted(numbers) == list(range(400))  # unique, none lost
    with Worker.spawn(postgres_url) as reader:
        trials = reader.trials("shared")
        assert len(trials) == 400
        assert all(t.state == "complete" and t.values is not None for t in trials)
        assert reader.list_studies()[0].n_running == 0


def test_database_outage_gives_storage_error_then_recovers(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    with Worker.spawn(url) as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        (before,) = worker.ask("s")
        worker.tell("s", before.number, value=1.0)
        postgres.stop()
        try:
            for method, params in [
                ("ask", {"study": "s"}),
                ("trials", {"study": "s"}),
                ("list", None),
                ("create", {"study": "t"}),
            ]:
                with pytest.raises(WorkerError) as caught:
                    worker.call(method, params)
                assert caught.value.kind == "storage_error", method
                assert caught.value.code == -32007
            assert worker.ping()  # the worker itself is fine
        finally:
            postgres.ensure_running()
        (after,) = worker.ask("s")
        worker.tell("s", after.number, value=2.0)
        told = [t.values for t in worker.trials("s", states=["complete"])]
        assert told == [[1.0], [2.0]]


def test_worker_started_while_the_database_is_down_works_once_it_is_up(
    postgres: PostgresServer,
) -> None:
    url = postgres.new_database()
    postgres.stop()
    try:
        with Worker.spawn(url) as worker:
            assert worker.ready.storage == "postgresql"
            with pytest.raises(WorkerError) as caught:
                worker.create("s")
            assert caught.value.kind == "storage_error"
            assert "cannot open the postgresql storage" in caught.value.message
            postgres.start()
            assert worker.create("s").created
    finally:
        postgres.ensure_running()
