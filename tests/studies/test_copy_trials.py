"""``copy_trials``: warm-start a study with the trials of another."""

from __future__ import annotations

from typing import Any

import pytest

from bridge_worker.client import Worker, WorkerError

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "k": {"type": "int", "low": 1, "high": 4}}
NARROW = {
    "x": {"type": "float", "low": 0.0, "high": 0.5},
    "k": {"type": "int", "low": 1, "high": 4},
}


def _source(worker: Worker, name: str = "src") -> None:
    worker.create(name, search_space=SPACE, sampler={"type": "random", "seed": 1})
    for i, trial in enumerate(worker.ask(name, n=6)):
        if i == 4:
            worker.tell(name, trial.number, state="pruned")
        elif i == 5:
            worker.tell(name, trial.number, state="fail")
        else:
            worker.tell(
                name,
                trial.number,
                trial.params["x"],
                user_attrs={"i": i},
                constraints=[trial.params["x"] - 0.5],
            )


def _copy(worker: Worker, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = worker.call("copy_trials", params)
    return result


def test_complete_trials_are_copied_and_out_of_space_ones_skipped(worker: Worker) -> None:
    _source(worker)
    worker.create("dst", search_space=NARROW, sampler={"type": "tpe", "seed": 3})
    source = [t for t in worker.trials("src") if t.state == "complete"]
    inside = [t for t in source if t.params["x"] <= 0.5]
    result = _copy(worker, **{"from": "src", "to": "dst"})
    assert (result["copied"], result["skipped"]) == (len(inside), len(source) - len(inside))
    copied = worker.trials("dst")
    assert result["numbers"] == [t.number for t in copied]
    assert [(t.params, t.values, t.user_attrs) for t in copied] == [
        (t.params, t.values, t.user_attrs) for t in inside
    ]
    assert (
        worker.export("dst")["body"]["trials"][0]["system_attrs"]["optuna_bridge:copied_from"][
            "study"
        ]
        == "src"
    )
    assert worker.best("dst")  # constraints came along: the best is feasible


def test_states_limit_and_params_only(worker: Worker) -> None:
    _source(worker)
    worker.create("dst", search_space=SPACE)
    one = _copy(worker, **{"from": "src", "to": "dst", "states": ["pruned", "fail"], "limit": 1})
    assert (one["copied"], one["skipped"]) == (1, 0)
    assert worker.trials("dst")[0].state == "pruned"
    queued = _copy(worker, **{"from": "src", "to": "dst", "params_only": True, "limit": 2})
    assert [t.state for t in worker.trials("dst")] == ["pruned", "waiting", "waiting"]
    first = next(t for t in worker.trials("src") if t.state == "complete")
    (asked,) = worker.ask("dst")
    assert asked.number == queued["numbers"][0] and asked.params == first.params


def test_the_target_stream_is_reproducible_after_a_copy() -> None:
    streams = []
    for _ in range(2):
        with Worker.spawn() as worker:
            _source(worker)
            worker.create(
                "dst", search_space=SPACE, sampler={"type": "tpe", "seed": 9, "n_startup_trials": 2}
            )
            _copy(worker, **{"from": "src", "to": "dst"})
            streams.append([t.params for t in worker.ask("dst", n=3)])
    assert streams[0] == streams[1]


def test_copy_into_the_same_study_and_across_storages_by_import(storage_url: str) -> None:
    with Worker.spawn() as elsewhere:
        _source(elsewhere)
        snapshot = elsewhere.export("src")
    with Worker.spawn(storage=storage_url) as worker:
        worker.import_(snapshot, study="imported")
        worker.create("dst", search_space=SPACE)
        assert _copy(worker, **{"from": "imported", "to": "dst"})["copied"] == 4
    with Worker.spawn(storage=storage_url) as worker:  # durable: the copies are stored
        assert len(worker.trials("dst")) == 4
        again = _copy(worker, **{"from": "dst", "to": "dst", "limit": 2})
        assert again["numbers"] == [4, 5]


@pytest.mark.parametrize(
    ("params", "kind", "field"),
    [
        ({"from": "nope", "to": "dst"}, "study_not_found", None),
        ({"from": "src", "to": "nope"}, "study_not_found", None),
        (
            {"from": "src", "to": "dst", "states": ["running"]},
            "invalid_params",
            "$.params.states[0]",
        ),
        ({"from": "src", "to": "dst", "limit": 0}, "invalid_params", "$.params.limit"),
        ({"from": "src"}, "invalid_params", "$.params"),
        ({"from": "src", "to": "dst", "extra": 1}, "invalid_params", "$.params.extra"),
    ],
)
def test_bad_copies_write_nothing(
    worker: Worker, params: dict[str, Any], kind: str, field: str | None
) -> None:
    _source(worker)
    worker.create("dst", search_space=SPACE)
    with pytest.raises(WorkerError) as caught:
        worker.call("copy_trials", params)
    assert caught.value.kind == kind
    if field is not None:
        assert caught.value.data["field"] == field
    assert worker.trials("dst") == []


def test_values_that_do_not_fit_the_target_directions_are_skipped(worker: Worker) -> None:
    _source(worker)
    worker.create("multi", directions=["minimize", "maximize"], search_space=SPACE)
    result = _copy(worker, **{"from": "src", "to": "multi"})
    assert (result["copied"], result["skipped"]) == (0, 4)
