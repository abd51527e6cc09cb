"""Stop rules (``create`` ``stop``, ``set_stop``): the study says when it is done."""

from __future__ import annotations

import datetime

import pytest
from optuna.trial import TrialState, create_trial

from bridge_worker.client import StudyStopped, Worker, WorkerError
from bridge_worker.schema import StopRules
from bridge_worker.stopping import evaluate

SPACE = {"x": {"type": "float", "low": 0.0, "high": 10.0}}


def _complete(number: int, value: float, minute: int) -> object:
    trial = create_trial(value=value, params={}, distributions={})
    trial.number = number
    trial.datetime_start = datetime.datetime(2026, 1, 1, 0, minute)
    trial.datetime_complete = datetime.datetime(2026, 1, 1, 0, minute, 30)
    return trial


def test_rules_hold_in_a_fixed_order_and_only_when_they_should() -> None:
    trials = [_complete(i, v, i) for i, v in enumerate([5.0, 4.0, 4.5, 4.2])]
    assert evaluate(StopRules(target=3.0), "minimize", trials) is None  # type: ignore[arg-type]
    hit = evaluate(StopRules(target=4.0, max_trials=1), "minimize", trials)  # type: ignore[arg-type]
    assert hit is not None and hit.rule == "target" and hit.detail["number"] == 1
    assert evaluate(StopRules(target=5.0), "maximize", trials).rule == "target"  # type: ignore[arg-type, union-attr]
    assert evaluate(StopRules(patience=3), "minimize", trials) is None  # type: ignore[arg-type]
    held = evaluate(StopRules(patience=2), "minimize", trials)  # type: ignore[arg-type]
    assert held is not None and held.detail["without_improvement"] == 2
    # 4.0 -> 3.95 is no improvement by more than 0.1
    more = [*trials, _complete(4, 3.95, 5)]
    assert evaluate(StopRules(patience=3, min_delta=0.1), "minimize", more) is not None  # type: ignore[arg-type]
    assert evaluate(StopRules(patience=3), "minimize", more) is None  # type: ignore[arg-type]
    assert evaluate(StopRules(max_trials=4), "minimize", trials).rule == "max_trials"  # type: ignore[arg-type, union-attr]
    assert evaluate(StopRules(max_trials=5), "minimize", trials) is None  # type: ignore[arg-type]
    late = datetime.datetime(2026, 1, 1, 0, 10)
    assert evaluate(StopRules(max_seconds=601), "minimize", trials, late) is None  # type: ignore[arg-type]
    assert evaluate(StopRules(max_seconds=600), "minimize", trials, late).rule == "max_seconds"  # type: ignore[arg-type, union-attr]


def test_pruned_trials_count_toward_max_trials_but_not_patience() -> None:
    pruned = create_trial(state=TrialState.PRUNED, params={}, distributions={})
    assert evaluate(StopRules(max_trials=1), "minimize", [pruned]) is not None
    assert evaluate(StopRules(patience=1), "minimize", [pruned]) is None


def _run(worker: Worker, study: str, values: list[float]) -> dict[str, object]:
    told = None
    for value in values:
        (trial,) = worker.ask(study)
        told = worker.call("tell", {"study": study, "number": trial.number, "value": value})
    assert isinstance(told, dict)
    return told


def test_a_study_stops_asking_once_a_rule_holds_and_resumes_when_cleared(worker: Worker) -> None:
    worker.create("s", search_space=SPACE, stop={"max_trials": 2})
    first = _run(worker, "s", [1.0])
    assert "stopped" not in first
    told = _run(worker, "s", [2.0])
    assert told["stopped"] == {"rule": "max_trials", "detail": {"max_trials": 2, "trials": 2}}
    with pytest.raises(StudyStopped) as caught:
        worker.ask("s")
    assert caught.value.kind == "study_stopped" and caught.value.code == -32012
    assert caught.value.rule == "max_trials"
    assert [t.state for t in worker.trials("s")] == ["complete", "complete"]  # nothing left behind
    summary = worker.call("list")["studies"][0]
    assert summary["stopped"]["rule"] == "max_trials"
    assert worker.call("best", {"study": "s"})["stopped"]["rule"] == "max_trials"
    cleared = worker.set_stop("s", None)
    assert cleared.stop is None and cleared.stopped is None
    assert worker.ask("s")[0].number == 2
    assert "stopped" not in worker.call("list")["studies"][0]
    changed = worker.set_stop("s", {"target": 100.0})
    assert changed.stopped is not None and changed.stopped.rule == "target"


def test_running_trials_still_finish_after_the_study_stopped(worker: Worker) -> None:
    worker.create("s", search_space=SPACE, stop={"target": 0.5})
    (a,) = worker.ask("s")
    (b,) = worker.ask("s")
    assert worker.tell("s", a.number, 0.1).stopped is not None
    with pytest.raises(StudyStopped):
        worker.ask("s", n=3)
    assert worker.report("s", b.number, 0, 0.3) in (True, False)
    told = worker.tell("s", b.number, 0.05)
    assert told.state == "complete" and told.stopped is not None
    assert told.stopped.detail["number"] == b.number  # the best now is b


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"directions": ["minimize", "maximize"], "stop": {"target": 1.0}}, "$.params.stop"),
        ({"stop": {"min_delta": 0.1}}, "$.params.stop.min_delta"),
        ({"stop": {"patience": 0}}, "$.params.stop.patience"),
        ({"stop": {"max_seconds": 0}}, "$.params.stop.max_seconds"),
        ({"stop": {"max_trials": 1, "until": 3}}, "$.params.stop"),
    ],
)
def test_bad_rules_are_invalid_params_and_create_nothing(
    worker: Worker, params: dict[str, object], field: str
) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.call("create", {"study": "s", **params})
    assert caught.value.kind == "invalid_params"
    assert caught.value.data["field"].startswith(field)
    assert worker.list_studies() == []


def test_set_stop_errors(worker: Worker) -> None:
    with pytest.raises(WorkerError) as missing:
        worker.set_stop("nope", {"target": 1.0})
    assert missing.value.kind == "study_not_found"
    worker.create("multi", directions=["minimize", "minimize"])
    with pytest.raises(WorkerError) as multi:
        worker.set_stop("multi", {"max_trials": 3})
    assert multi.value.data["field"] == "$.params.stop"
    with pytest.raises(WorkerError) as absent:
        worker.call("set_stop", {"study": "multi"})
    assert absent.value.kind == "invalid_params"


def test_rules_survive_a_restart_and_export_import(storage_url: str) -> None:
    with Worker.spawn(storage=storage_url) as worker:
        worker.create("s", search_space=SPACE, stop={"max_trials": 1})
        _run(worker, "s", [3.0])
        snapshot = worker.export("s")
    with Worker.spawn(storage=storage_url) as worker:
        with pytest.raises(StudyStopped):
            worker.ask("s")
        assert worker.list_studies()[0].stopped is not None
        worker.set_stop("s", {"max_trials": 2})
    with Worker.spawn(storage=storage_url) as worker:
        assert worker.ask("s")[0].number == 1  # the changed rules were stored
    with Worker.spawn() as worker:
        worker.import_(snapshot)
        with pytest.raises(StudyStopped):
            worker.ask("s")
        assert snapshot["body"]["config"]["stop"]["max_trials"] == 1


def test_max_seconds_stops_without_any_tell(worker: Worker) -> None:
    worker.create("s", search_space=SPACE, stop={"max_seconds": 0.2})
    worker.ask("s")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
    while datetime.datetime.now() < deadline:
        try:
            worker.ask("s")
        except StudyStopped as stopped:
            assert stopped.rule == "max_seconds" and stopped.detail["elapsed"] >= 0.2
            return
    pytest.fail("max_seconds never stopped the study")
