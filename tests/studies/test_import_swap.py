"""``import`` with ``overwrite`` is never destructive (issue 17): a storage failure injected at
every write of the import, and kill -9 of a real worker at many moments of one, on SQLite,
journal and PostgreSQL. At every point the name holds the complete old study or the complete new
one, or a complete staged copy exists and the next worker (or this one's next frame) restores it.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import optuna
import orjson
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.storage import _rdb
from bridge_worker.storage.handle import open_storage
from bridge_worker.storage.options import StorageOptions
from bridge_worker.storage.writers import STAGING_PREFIX
from bridge_worker.studies import staged_import
from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.studies.snapshot import read_snapshot
from bridge_worker.studies.staged_import import RECORD_ATTR, recover
from bridge_worker.wire.errors import BridgeError, ErrorKind
from tests.helpers import endpoint_result, make_endpoint
from tests.races import race_env

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
WRITES = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "create_new_trial",
)

EVERY_STORAGE = pytest.mark.parametrize(
    "storage_url", ["sqlite", "journal", "postgresql", "fake"], indirect=True
)
"""The durable storages, and the test-only backend (``tests/fake_storage/``). Not for kill -9:
the fake is Optuna's plain journal, whose symlink lock a killed writer leaves behind (the real
journal backend's ``flock`` is what makes a kill harmless)."""


@functools.cache
def make_snapshot(n_trials: int, value: float, direction: str) -> bytes:
    """A snapshot of a study with ``n_trials`` complete trials, all of value ``value``. Built
    in-process, once per module: the snapshot is input data here, and the worker's export is
    proven through a real process by ``test_snapshot.py``."""
    endpoint = make_endpoint()
    endpoint_result(
        endpoint,
        "create",
        {
            "study": "s",
            "direction": direction,
            "search_space": SPACE,
            "sampler": {"type": "random", "seed": 1},
            "user_attrs": {"v": value},
        },
    )
    for start in range(0, n_trials, 500):
        asked = endpoint_result(endpoint, "ask", {"study": "s", "n": min(500, n_trials - start)})
        for trial in asked["trials"]:
            endpoint_result(
                endpoint, "tell", {"study": "s", "number": trial["number"], "value": value}
            )
    return orjson.dumps(endpoint_result(endpoint, "export", {"study": "s"})["snapshot"])


OLD = (8, 1.0, "minimize")
NEW = (12, 2.0, "maximize")


Shape = tuple[int, float, str]


def what_the_name_holds(url: str, old: Shape = OLD, new: Shape = NEW) -> str:
    """'old', 'new', 'none' or 'partial', read with plain Optuna (no recovery)."""
    name = "s"
    storage = open_storage(StorageOptions(url))
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return "none"
    trials = storage.get_all_trials(study_id, deepcopy=False)
    direction = storage.get_study_directions(study_id)[0].name.lower()
    for label, (n, value, wanted) in (("old", old), ("new", new)):
        if len(trials) == n and all(t.values == [value] for t in trials) and direction == wanted:
            return label
    return "partial"


def ready_stagings(url: str) -> list[str]:
    storage = open_storage(StorageOptions(url))
    return [
        s.study_name
        for s in storage.get_all_studies()
        if s.study_name.startswith(STAGING_PREFIX)
        and (s.system_attrs.get(RECORD_ATTR) or {}).get("state") in ("ready", "copying")
    ]


def all_names(url: str) -> list[str]:
    return sorted(s.study_name for s in open_storage(StorageOptions(url)).get_all_studies())


class Fault(Exception):
    pass


def inject_fault(storage: Any, at: int, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Make the ``at``-th write to ``storage`` (or the RDB swap transaction) fail with a storage
    error; returns a function telling how many writes were seen."""
    seen = {"n": 0}

    def failing(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            seen["n"] += 1
            if seen["n"] == at:
                raise optuna.exceptions.StorageInternalError("injected failure")
            return original(*args, **kwargs)

        return write

    for name in WRITES:
        monkeypatch.setattr(storage, name, failing(getattr(storage, name)))
    monkeypatch.setattr(_rdb, "swap_staged", failing(_rdb.swap_staged))
    return lambda: seen["n"]


def registry_on(url: str) -> StudyRegistry:
    return StudyRegistry(StorageOptions(url))


def do_import(registry: StudyRegistry, raw: bytes) -> None:
    body, trials = read_snapshot(raw)
    registry.restore("s", body, trials, overwrite=True)


@EVERY_STORAGE
@pytest.mark.timeout(600)
def test_storage_failure_at_every_write_of_an_overwriting_import(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = make_snapshot(*OLD), make_snapshot(*NEW)
    do_import(registry_on(storage_url), old)
    assert what_the_name_holds(storage_url) == "old"
    outcomes: dict[str, int] = {}
    at = 1
    while True:
        registry = registry_on(storage_url)
        writes = inject_fault(registry.open(), at, monkeypatch)
        try:
            do_import(registry, new)
            failed = False
        except Exception:
            failed = True
        monkeypatch.undo()
        held = what_the_name_holds(storage_url)
        if not failed:
            assert held == "new" and writes() < at
            break
        if held not in ("old", "new"):  # only while a complete staged copy exists
            assert ready_stagings(storage_url), (at, held)
        registry_on(storage_url).open()  # the next worker's start completes or rolls back
        after = what_the_name_holds(storage_url)
        assert after in ("old", "new"), (at, held, after)
        assert all_names(storage_url) == ["s"], at  # no staging study left behind
        outcomes[after] = outcomes.get(after, 0) + 1
        if after == "new":
            do_import(registry_on(storage_url), old)
        at += 1
    assert outcomes.get("old", 0) > 0 and outcomes.get("new", 0) > 0, outcomes


def swap_failed_after_commit(url: str) -> StudyRegistry:
    """The registry of a worker whose overwriting import of NEW over OLD failed in the swap (the
    old study's delete): the import is committed, a complete staged copy waits for recovery."""
    registry = registry_on(url)
    do_import(registry, make_snapshot(*OLD))
    storage = registry.open()
    delete = storage.delete_study
    storage.delete_study = _fail  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(BridgeError) as caught:
            do_import(registry, make_snapshot(*NEW))
    finally:
        storage.delete_study = delete  # type: ignore[method-assign]
    assert caught.value.data["committed"] is True
    assert caught.value.kind is ErrorKind.STORAGE_ERROR
    return registry


def test_a_committed_import_whose_swap_failed_is_completed_by_the_same_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"journal:///{tmp_path / 'pending.log'}"
    registry = swap_failed_after_commit(url)
    assert len(registry.get("s").study.get_trials()) == NEW[0]  # the next frame completes it
    assert all_names(url) == ["s"]


def test_a_lease_sweep_never_completes_an_import_behind_the_frames_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease thread once reached the storage through the property that runs import recovery:
    after a failed swap, its next sweep completed the import in the background, racing the next
    frame's recovery in the same process (each took the other, same pid, for a dead writer). In
    a CI run the frame's recovery met the thread's copy half made, said ``import_completed``, and
    a reader then found half a study under the name. Recovery belongs to the frames."""
    url = f"journal:///{tmp_path / 'swept.log'}"
    registry = swap_failed_after_commit(url)
    swept = threading.Event()
    sweep = registry.leases._sweep_quietly

    def noted(study_id: int) -> None:
        sweep(study_id)
        swept.set()

    monkeypatch.setattr(registry.leases, "_sweep_quietly", noted)
    registry.leases.watch(0, at=time.time())  # any study: a sweep reaches the storage
    assert swept.wait(60)
    assert what_the_name_holds(url) == "old" and ready_stagings(url)  # untouched by the sweep
    assert len(registry.get("s").study.get_trials()) == NEW[0]  # the next frame completes it
    assert all_names(url) == ["s"]


def test_two_recoveries_in_one_process_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer record names a process, so two recoveries in one process (two registries, or a
    frame and a thread) would each take the other's half-made copy for a dead writer's. They take
    turns: the second waits for the first, then finds nothing left to do."""
    url = f"journal:///{tmp_path / 'turns.log'}"
    swap_failed_after_commit(url)
    first, second = open_storage(StorageOptions(url)), open_storage(StorageOptions(url))
    copying, resume, waiting = threading.Event(), threading.Event(), threading.Event()
    copies: list[str] = []
    for opened in (first, second):
        create = opened.create_new_study

        def noted_create(directions: Any, name: str | None = None, _create: Any = create) -> int:
            copies.append(str(name))
            return int(_create(directions, name))

        monkeypatch.setattr(opened, "create_new_study", noted_create)
    trial = first.create_new_trial

    def paused_trial(*args: Any, **kwargs: Any) -> int:
        copying.set()
        assert resume.wait(60)
        return int(trial(*args, **kwargs))

    monkeypatch.setattr(first, "create_new_trial", paused_trial)
    lock = staged_import.IN_PROCESS

    class NotedLock:
        def __enter__(self) -> None:
            if threading.current_thread().name == "second":
                waiting.set()
            lock.__enter__()

        def __exit__(self, *exc: Any) -> None:
            lock.__exit__(*exc)

    monkeypatch.setattr(staged_import, "IN_PROCESS", NotedLock())
    results: dict[str, int] = {}
    threads = [
        threading.Thread(target=lambda: results.update(first=recover(first)), name="first"),
        threading.Thread(target=lambda: results.update(second=recover(second)), name="second"),
    ]
    threads[0].start()
    assert copying.wait(60)
    threads[1].start()
    assert waiting.wait(60)
    resume.set()
    for thread in threads:
        thread.join(60)
    assert results == {"first": 1, "second": 0}
    assert copies == ["s"]  # one copy made, by the first
    assert what_the_name_holds(url) == "new" and all_names(url) == ["s"]


def _fail(*args: Any) -> None:
    raise optuna.exceptions.StorageInternalError("injected failure")


@pytest.fixture
def killed_worker_runs() -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for w in workers:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait(10)


@pytest.mark.timeout(600)
def test_kill_9_during_an_overwriting_import(
    storage_url: str, killed_worker_runs: list[Worker], tmp_path: Path
) -> None:
    """The worker kills itself with SIGKILL just before its N-th storage write (a race hook),
    for N spread over the whole import, and once right after the reply. A kill timed from outside
    landed after the import on a fast machine and before it on a loaded one."""
    big: Shape = (150, 2.0, "maximize")
    old, new = make_snapshot(*OLD), make_snapshot(*big)
    overwrite = {"snapshot": orjson.loads(new), "study": "s", "overwrite": True}
    with Worker.spawn(storage_url) as w:
        w.import_(orjson.loads(old), study="s")
    counted = tmp_path / "counted"
    counted.mkdir()
    with Worker.spawn(storage_url, env=race_env(counted, "kill_at_write")) as w:
        w.call("import", overwrite)
        n_writes = int((counted / "writes").read_text())
        w.import_(orjson.loads(old), study="s", overwrite=True)
    assert n_writes > big[0]  # every trial of the copy is a write
    seen: dict[str, int] = {}
    kill_points = sorted({1, n_writes // 4, n_writes // 2, 3 * n_writes // 4, n_writes})
    for kill_at in [*kill_points, None]:
        race = tmp_path / f"kill-{kill_at}"
        race.mkdir()
        env = race_env(race, "kill_at_write", kill_at=kill_at or 0)
        w = Worker.spawn(storage_url, env=env)
        killed_worker_runs.append(w)
        w.send("import", overwrite)
        if kill_at is None:
            assert isinstance(w.receive().error, msgspec.UnsetType)
            os.kill(w.pid, signal.SIGKILL)
        assert w.proc.wait(60) == -signal.SIGKILL
        held = what_the_name_holds(storage_url, new=big)
        if held not in ("old", "new"):
            assert ready_stagings(storage_url), (kill_at, held)
        with Worker.spawn(storage_url) as after:  # its start restores the name
            assert [s.study for s in after.list_studies()] == ["s"]
            n = len(after.trials("s", limit=1000))
        assert all_names(storage_url) == ["s"]
        final = what_the_name_holds(storage_url, new=big)
        assert final in ("old", "new") and n == (OLD[0] if final == "old" else big[0])
        seen[final] = seen.get(final, 0) + 1
        if final == "new":
            with Worker.spawn(storage_url) as w2:
                w2.import_(orjson.loads(old), study="s", overwrite=True)
    assert seen.get("old", 0) > 0 and seen.get("new", 0) > 0, (seen, n_writes)


def test_import_refuses_reserved_names_and_hides_stagings(tmp_path: Path) -> None:
    with Worker.spawn(f"sqlite:///{tmp_path / 'r.db'}") as w:
        with pytest.raises(WorkerError) as caught:
            w.create(STAGING_PREFIX + "x")
        assert caught.value.kind == "invalid_params"
        snapshot = orjson.loads(make_snapshot(3, 1.0, "minimize"))
        with pytest.raises(WorkerError) as caught:
            w.import_(snapshot, study=STAGING_PREFIX + "x")
        assert caught.value.kind == "invalid_params"
        assert w.import_(snapshot).n_trials == 3
        assert w.export("s") == snapshot  # identity and bookkeeping attrs never exported
