"""``add_trials`` and metric names through the real worker process."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from bridge_worker.client import Worker, WorkerError

SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
}


def test_added_trials_get_numbers_and_are_stored(worker: Worker) -> None:
    worker.create("s", search_space=SPACE)
    numbers = worker.add_trials(
        "s",
        [
            {"params": {"x": 1.5, "opt": "adam"}, "value": 2.25, "user_attrs": {"source": "paper"}},
            {"params": {"x": -3.0}, "state": "pruned", "intermediate_values": {"0": 9.5, "1": 9.0}},
            {"params": {"x": 0.0, "opt": "sgd"}, "state": "fail"},
            {"params": {"x": 2.0, "opt": "sgd"}, "value": 4.0, "constraints": [0.5]},
        ],
    )
    assert numbers == [0, 1, 2, 3]
    trials = worker.trials("s")
    assert [t.state for t in trials] == ["complete", "pruned", "fail", "complete"]
    assert trials[0].params == {"x": 1.5, "opt": "adam"}
    assert trials[0].values == [2.25]
    assert trials[0].user_attrs == {"source": "paper"}
    assert trials[1].intermediate_values == {0: 9.5, 1: 9.0}
    (best,) = worker.best("s")
    assert best.number == 0  # trial 3 is infeasible (constraint 0.5 > 0)
    (asked,) = worker.ask("s")
    assert asked.number == 4


@pytest.mark.parametrize(
    ("trial", "field", "words"),
    [
        ({"params": {"y": 1.0}, "value": 1.0}, "$.params.trials[1].params.y", "not in the study"),
        ({"params": {"x": 11.0}, "value": 1.0}, "$.params.trials[1].params.x", "not in the"),
        ({"params": {"opt": "rmsprop"}, "value": 1.0}, "$.params.trials[1].params.opt", "not in"),
        ({"params": {"x": 1.0}}, "$.params.trials[1].value", "needs value"),
        ({"params": {"x": 1.0}, "values": [1.0, 2.0]}, "$.params.trials[1].values", "objective"),
        (
            {"params": {"x": 1.0}, "state": "fail", "value": 1.0},
            "$.params.trials[1].value",
            "takes no value",
        ),
        ({"params": {"x": 1.0}, "value": float("inf")}, "$.params.trials[1].value", ""),
        (
            {"params": {"x": 1.0}, "state": "fail", "constraints": [1.0]},
            "$.params.trials[1].constraints",
            "no constraints",
        ),
        ({"params": {"x": 1.0}, "value": 1.0, "color": "red"}, "$.params.trials[1].color", ""),
    ],
)
def test_a_bad_trial_rejects_the_whole_call(
    worker: Worker, trial: dict[str, object], field: str, words: str
) -> None:
    worker.create("s", search_space=SPACE)
    good = {"params": {"x": 1.0, "opt": "adam"}, "value": 1.0}
    with pytest.raises(WorkerError) as caught:
        worker.add_trials("s", [good, trial, good])
    assert caught.value.kind == "invalid_params"
    assert caught.value.data["field"] == field
    assert words in caught.value.message
    assert worker.trials("s") == []  # all or nothing


def test_add_trials_errors(worker: Worker) -> None:
    with pytest.raises(WorkerError) as missing:
        worker.add_trials("nope", [{"value": 1.0}])
    assert missing.value.kind == "study_not_found"
    worker.create("s", search_space=SPACE)
    with pytest.raises(WorkerError) as empty:
        worker.add_trials("s", [])
    assert empty.value.kind == "invalid_params"


def _median_distance_to_optimum(worker: Worker, added: list[dict[str, object]]) -> float:
    worker.create(
        "s",
        search_space={"x": {"type": "float", "low": -10.0, "high": 10.0}},
        sampler={"type": "tpe", "seed": 3},
    )
    if added:
        worker.add_trials("s", added)
    distances = []
    for _ in range(10):
        (trial,) = worker.ask("s")
        x = float(trial.params["x"])  # type: ignore[arg-type]
        worker.tell("s", trial.number, (x - 7.0) ** 2)
        distances.append(abs(x - 7.0))
    return statistics.median(distances)


def test_tpe_learns_from_added_trials() -> None:
    """Results added from elsewhere (good ones near x = 7) pull TPE's next asks there, where a
    study without them still samples its random start-up trials all over the range."""
    xs = [
        -9.0,
        -7.5,
        -6.0,
        -4.0,
        -2.5,
        -1.0,
        0.5,
        2.0,
        3.5,
        5.0,
        6.2,
        6.6,
        6.9,
        7.1,
        7.3,
        7.8,
        -8.5,
        -5.5,
        1.0,
        4.2,
    ]
    added: list[dict[str, object]] = [{"params": {"x": x}, "value": (x - 7.0) ** 2} for x in xs]
    with Worker.spawn() as informed, Worker.spawn() as blank:
        with_added = _median_distance_to_optimum(informed, added)
        without = _median_distance_to_optimum(blank, [])
    assert with_added < 2.5 < without, (with_added, without)


def test_metric_names_everywhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with Worker.spawn(url) as worker:
        created = worker.create(
            "s",
            directions=["minimize", "maximize"],
            search_space=SPACE,
            metric_names=["loss", "accuracy"],
        )
        assert created.metric_names == ["loss", "accuracy"]
        worker.add_trials("s", [{"params": {"x": 1.0}, "values": [0.3, 0.9]}])
        assert worker.call("best", {"study": "s"})["metric_names"] == ["loss", "accuracy"]
        assert worker.metric_names("s") == ["loss", "accuracy"]
        assert worker.list_studies()[0].metric_names == ["loss", "accuracy"]
        snapshot = worker.export("s")
        assert snapshot["body"]["system_attrs"]["study:metric_names"] == ["loss", "accuracy"]
        again = worker.create(
            "s",
            directions=["minimize", "maximize"],
            load_if_exists=True,
            metric_names=["other", "names"],
        )
        assert again.metric_names == ["loss", "accuracy"]  # the stored study's win
    with Worker.spawn() as fresh:  # the names travel with a snapshot
        fresh.import_(snapshot)
        assert fresh.metric_names("s") == ["loss", "accuracy"]
        with pytest.raises(WorkerError) as wrong:
            fresh.create("t", metric_names=["a", "b"])
        assert wrong.value.kind == "invalid_params"
        assert wrong.value.data["field"] == "$.params.metric_names"
        fresh.create("plain")
        assert fresh.metric_names("plain") is None
        assert "metric_names" not in fresh.call("list")["studies"][1]
