"""Two real worker processes on one storage (SQLite, journal, PostgreSQL): a worker's cached study
is never used once the name means another study (issue 17).

Worker A caches study ``s``; worker B deletes it and creates another study (SQLite hands the freed
storage id to the new one) or re-creates ``s`` with another direction and search space. Nothing
A does afterwards may write into, answer from or delete a study other than the one the name
means now.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.storage.handle import open_storage
from bridge_worker.storage.options import StorageOptions

EVERY_STORAGE = pytest.mark.parametrize(
    "storage_url", ["sqlite", "journal", "postgresql", "fake"], indirect=True
)
"""The durable storages, and the test-only backend (``tests/fake_storage/``)."""

OLD_SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
NEW_SPACE = {"y": {"type": "int", "low": 10, "high": 20}}


@pytest.fixture
def two_workers(storage_url: str) -> Iterator[tuple[Worker, Worker]]:
    with Worker.spawn(storage_url) as a, Worker.spawn(storage_url) as b:
        yield a, b


def _study_ids(url: str) -> dict[str, int]:
    storage = open_storage(StorageOptions(url))
    return {s.study_name: s._study_id for s in storage.get_all_studies()}


def _run(w: Worker, study: str, values: list[float]) -> None:
    for value in values:
        (trial,) = w.ask(study)
        w.tell(study, trial.number, value=value)


@EVERY_STORAGE
def test_recreated_study_is_served_with_its_own_direction_and_space(
    two_workers: tuple[Worker, Worker],
) -> None:
    a, b = two_workers
    a.create(
        "s", direction="minimize", search_space=OLD_SPACE, sampler={"type": "random", "seed": 1}
    )
    _run(a, "s", [100.0, 300.0])
    assert a.best("s")[0].values == [100.0]

    b.delete("s")
    b.create(
        "s", direction="maximize", search_space=NEW_SPACE, sampler={"type": "random", "seed": 2}
    )
    _run(b, "s", [100.0, 300.0])

    assert a.best("s")[0].values == [300.0]  # ranked by the new direction
    (asked,) = a.ask("s")
    assert set(asked.params) == {"y"} and 10 <= asked.params["y"] <= 20  # the new space
    a.tell("s", asked.number, value=5.0)
    trials = b.trials("s")
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(set(t.params) == {"y"} for t in trials)
    assert a.create("s", load_if_exists=True).directions == ["maximize"]


@EVERY_STORAGE
def test_deleted_study_is_gone_for_the_other_worker_and_the_new_one_is_untouched(
    two_workers: tuple[Worker, Worker],
    storage_url: str,
) -> None:
    a, b = two_workers
    a.create("s", search_space=OLD_SPACE, sampler={"type": "random", "seed": 1})
    _run(a, "s", [1.0, 2.0])
    (running,) = a.ask("s")
    old_id = _study_ids(storage_url)["s"]

    b.delete("s")
    b.create("t", direction="maximize", search_space=NEW_SPACE)
    if storage_url.startswith("sqlite"):
        assert _study_ids(storage_url)["t"] == old_id  # SQLite reused the freed id

    for method, params in [
        ("ask", {"study": "s"}),
        ("tell", {"study": "s", "number": running.number, "value": 3.0}),
        ("best", {"study": "s"}),
        ("trials", {"study": "s"}),
        ("report", {"study": "s", "number": running.number, "step": 1, "value": 1.0}),
        ("enqueue", {"study": "s", "params": {"x": 0.5}}),
        ("set_attrs", {"study": "s", "user_attrs": {"k": 1}}),
        ("export", {"study": "s"}),
        ("delete", {"study": "s"}),
    ]:
        with pytest.raises(WorkerError) as caught:
            a.call(method, params)
        assert caught.value.kind == "study_not_found", method

    assert b.trials("t") == []
    assert b.call("list")["studies"] == [
        {"study": "t", "directions": ["maximize"], "n_trials": 0, "n_running": 0}
    ]
    created = b.create("t", load_if_exists=True)
    assert created.directions == ["maximize"] and created.n_trials == 0


@EVERY_STORAGE
def test_delete_by_a_stale_worker_deletes_only_what_the_name_means_now(
    two_workers: tuple[Worker, Worker],
) -> None:
    """A deletes ``s`` after B replaced it: the study deleted is the one A checked (the new
    one, which is what the name means), and B's other study is untouched."""
    a, b = two_workers
    a.create("s", search_space=OLD_SPACE)
    _run(a, "s", [1.0])
    b.delete("s")
    b.create("keep", search_space=NEW_SPACE)
    _run(b, "keep", [7.0])
    b.create("s", direction="maximize", search_space=NEW_SPACE)
    assert a.delete("s").deleted
    assert [s["study"] for s in b.call("list")["studies"]] == ["keep"]
    assert [t.values for t in b.trials("keep")] == [[7.0]]


def test_a_study_made_by_plain_optuna_is_adopted_with_a_token(tmp_path: Path) -> None:
    """Studies without an identity token (older versions, plain Optuna) still load; the first
    worker to load one stamps it, and a re-creation under the same name is then told apart."""
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    study = optuna.create_study(storage=url, study_name="old", direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.5},
            distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            value=2.0,
        )
    )
    with Worker.spawn(url) as a, Worker.spawn(url) as b:
        assert a.best("old")[0].values == [2.0]
        assert b.best("old")[0].values == [2.0]
        legacy = optuna.load_study(study_name="old", storage=url)
        stored = legacy._storage.get_study_system_attrs(legacy._study_id)
        assert isinstance(stored["optuna_bridge:identity"], str)
        optuna.delete_study(study_name="old", storage=url)  # as an older version would
        optuna.create_study(storage=url, study_name="old", direction="minimize")
        with pytest.raises(WorkerError) as caught:
            a.best("old")
        assert caught.value.kind == "no_completed_trials"
        assert a.create("old", load_if_exists=True).directions == ["minimize"]
