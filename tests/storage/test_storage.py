"""Storages chosen by the operator: kinds, start-up checks, restart and resume on every backend."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.storage.options import StorageOptions, check_options, storage_kind
from tests.helpers import PYTHON

SPACE = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "k": {"type": "int", "low": 1, "high": 9, "step": 2},
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory", "memory"),
        ("sqlite:///tmp/x.db", "sqlite"),
        ("postgresql+psycopg2://bob:s3cret@db.example:5432/hpo", "postgresql"),
        ("mysql+pymysql://bob:s3cret@db/hpo", "mysql"),
        ("journal:///var/lib/hpo/study.log", "journal"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis"),
    ],
)
def test_storage_kind_never_carries_the_url(url: str, kind: str) -> None:
    assert storage_kind(url) == kind


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (StorageOptions("memory", heartbeat=5), "needs a durable storage"),
        (StorageOptions("sqlite:///x.db", retry_failed=2), "need --heartbeat"),
        (StorageOptions("sqlite:///x.db", heartbeat=0), "at least 1 second"),
        (StorageOptions("journal://"), "needs a path"),
        (StorageOptions("nonsense"), "not a storage URL"),
    ],
)
def test_impossible_options_are_refused_at_start(options: StorageOptions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_options(options)


def test_command_line_refuses_heartbeat_on_memory() -> None:
    done = subprocess.run(
        [PYTHON, "-m", "bridge_worker", "--heartbeat", "5"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"--heartbeat needs a durable storage" in done.stderr


def test_unreachable_database_gives_storage_error_and_the_worker_stays_up() -> None:
    from tests.servers import free_port

    url = f"postgresql+psycopg2://bob:s3cret@127.0.0.1:{free_port()}/nothing"
    with Worker.spawn(url) as worker:
        assert worker.ready.storage == "postgresql"
        with pytest.raises(WorkerError) as caught:
            worker.create("s")
        assert caught.value.kind == "storage_error"
        assert "s3cret" not in str(caught.value)
        with pytest.raises(WorkerError) as caught:
            worker.list_studies()
        assert caught.value.kind == "storage_error"
        assert worker.ping()


# ---- restart and resume, on every durable storage -------------------------------------------

StorageFactory = Callable[[], str]


@pytest.fixture(params=["sqlite", "journal", "redis", "postgresql"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/studies.db"
    if kind == "journal":
        return f"journal:///{tmp_path}/studies.log"
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        # one Redis server per session: a database number per test keeps tests apart
        return url.rsplit("/", 1)[0] + f"/{_next_redis_db()}"
    return str(request.getfixturevalue("postgres_url"))


_redis_dbs = iter(range(1, 16))


def _next_redis_db() -> int:
    return next(_redis_dbs)


def test_a_restarted_worker_resumes_every_study(durable_url: str) -> None:
    with Worker.spawn(durable_url) as first:
        first.create(
            "hpo",
            direction="maximize",
            search_space=SPACE,
            sampler={"type": "random", "seed": 7},
            user_attrs={"team": "ml"},
        )
        first.create("other", directions=["minimize", "maximize"])
        asked = first.ask("hpo", n=3)
        first.tell("hpo", asked[0].number, value=1.5)
        first.tell("hpo", asked[1].number, value=2.5)
        # asked[2] is left running: its parent "died"

    with Worker.spawn(durable_url) as second:
        assert second.ready.storage == storage_kind(durable_url)
        studies = {s.study: s for s in second.list_studies()}
        assert set(studies) == {"hpo", "other"}
        assert (studies["hpo"].n_trials, studies["hpo"].n_running) == (3, 1)
        assert studies["other"].directions == ["minimize", "maximize"]

        # ask/tell/best/trials by name, no create first; the stored search space is used
        (trial,) = second.ask("hpo")
        assert trial.number == 3 and set(trial.params) == set(SPACE)
        second.tell("hpo", trial.number, value=3.5)
        assert second.best("hpo")[0].values == [3.5]
        running = second.trials("hpo", states=["running"])
        assert [t.number for t in running] == [asked[2].number]
        second.tell("hpo", asked[2].number, value=0.5)  # the old trial can still be told

        resumed = second.create("hpo", direction="minimize", load_if_exists=True)
        assert (resumed.created, resumed.directions) == (False, ["maximize"])
        assert (resumed.n_trials, resumed.n_running) == (4, 0)


def test_resumed_study_keeps_its_sampler_settings(tmp_path: Path) -> None:
    """A seeded study continued by a fresh worker draws what one worker would have drawn for
    the first trial after a restart: the stored sampler config is rebuilt, not defaulted."""
    url = f"sqlite:///{tmp_path}/s.db"
    with Worker.spawn(url) as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 3})
    with Worker.spawn(url) as worker, Worker.spawn() as reference:
        reference.create("s", search_space=SPACE, sampler={"type": "random", "seed": 3})
        assert worker.ask("s", n=4) == reference.ask("s", n=4)
