"""The Python client against a real worker: typed results, errors as exceptions, pipelining."""

from __future__ import annotations

import os
import signal

import pytest

from bridge_worker.client import Worker, WorkerError, WorkerExited
from bridge_worker.schema import AskedTrial, CreateResult, TellResult

SPACE = {"x": {"type": "int", "low": -5, "high": 5}}


def test_typed_results(worker: Worker) -> None:
    created = worker.create("c", search_space=SPACE, sampler={"type": "random", "seed": 2})
    assert created == CreateResult(
        study="c", directions=["minimize"], created=True, n_trials=0, n_running=0
    )
    trials = worker.ask("c", n=2)
    assert all(isinstance(t, AskedTrial) for t in trials)
    told = worker.tell("c", trials[0].number, 1.5, user_attrs={"note": "first"})
    assert told == TellResult(number=0, state="complete", values=[1.5])
    assert worker.tell("c", trials[1].number, state="fail").state == "fail"
    (best,) = worker.best("c")
    assert best.user_attrs == {"note": "first"}
    assert [s.study for s in worker.list_studies()] == ["c"]
    assert worker.delete("c").deleted
    assert worker.list_studies() == []


def test_errors_carry_their_kind(worker: Worker) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.ask("nobody")
    assert caught.value.kind == "study_not_found"
    assert caught.value.code == -32001
    worker.create("c")
    with pytest.raises(WorkerError) as caught:
        worker.create("c")
    assert caught.value.kind == "study_exists"
    assert worker.create("c", load_if_exists=True).created is False


def test_fixed_params_and_per_call_search_space(worker: Worker) -> None:
    worker.create("f", search_space=SPACE, sampler={"type": "random", "seed": 0})
    (trial,) = worker.ask("f", fixed_params={"x": 3})
    assert trial.params == {"x": 3}
    (trial,) = worker.ask("f", search_space={"y": {"type": "categorical", "choices": [True]}})
    assert set(trial.params) == {"x", "y"}
    with pytest.raises(WorkerError) as caught:
        worker.ask("f", fixed_params={"x": 99})
    assert caught.value.data["field"] == "$.params.fixed_params.x"
    with pytest.raises(WorkerError) as caught:
        worker.ask("f", fixed_params={"z": 1})
    assert caught.value.kind == "invalid_params"


def test_batch_and_failed_notifications(worker: Worker) -> None:
    replies = worker.batch([("ping", None), ("ask", {"study": "missing"})])
    assert [r.id for r in replies] == [1, 2]
    assert replies[1].error is not None
    worker.send("tell", {"study": "missing", "number": 0, "value": 1.0}, notify=True)
    assert worker.ping()
    (note,) = worker.notifications
    assert note.method == "error"


def test_killed_worker_raises_worker_exited() -> None:
    with Worker.spawn() as w:
        os.kill(w.pid, signal.SIGKILL)
        w.proc.wait()
        with pytest.raises((WorkerExited, BrokenPipeError)):
            w.ping()
    assert w.proc.returncode == -signal.SIGKILL
