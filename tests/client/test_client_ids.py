"""``ask`` ``client``: a restarted client gets back its own pending trials (Vizier's client id)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from msgspec import UNSET
from optuna.trial import TrialState

from bridge_worker.client import Worker, WorkerError, WorkerExited
from bridge_worker.studies.client_ids import asked_by
from tests.helpers import endpoint_result, make_endpoint
from tests.races import racing_worker, wait_until

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def test_a_client_gets_its_pending_trials_back_after_a_worker_restart(storage_url: str) -> None:
    with Worker.spawn(storage=storage_url) as worker:
        worker.create("s", search_space=SPACE)
        mine = worker.ask("s", n=2, client="node-a")
        other = worker.ask("s", client="node-b")
        anonymous = worker.ask("s")
        worker.tell("s", mine[1].number, 0.5)
        assert [t.client for t in worker.trials("s")] == ["node-a", "node-a", "node-b", UNSET]
        os.kill(worker.pid, signal.SIGKILL)  # the parent (and its worker) die between ask and tell
        worker.proc.wait()
    with Worker.spawn(storage=storage_url) as worker:
        again = worker.ask("s", n=2, client="node-a")
        assert again[0].number == mine[0].number and again[0].params == mine[0].params
        assert again[0].resumed is True
        assert again[1].resumed is not True and again[1].number == 4  # then a new one
        assert worker.ask("s", client="node-a")[0].number == 5  # never the same trial twice
        b = worker.ask("s", client="node-b")
        assert (b[0].number, b[0].resumed) == (other[0].number, True)
        assert all(not t.resumed for t in worker.ask("s", client="node-c"))
        assert anonymous[0].number not in {t.number for t in worker.ask("s", n=3, client="x")}
        worker.tell("s", mine[0].number, 0.1)


def test_a_worker_killed_mid_ask_leaves_the_trial_its_clients(tmp_path: Path) -> None:
    """kill -9 after the trial was stored but before its parameters: the trial is the client's
    from the start (a stress run of the Elixir client saw one RUNNING trial of nobody's)."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with racing_worker(storage, tmp_path / "race", "param_waits") as worker:
        worker.create("s", search_space=SPACE)
        kill_mid_ask(worker, tmp_path / "race" / "param-paused", "c")
    with Worker.spawn(storage=storage) as worker:
        (again,) = worker.ask("s", client="c")
        assert (again.number, again.resumed) == (0, True)
        assert set(again.params) == {"x"}  # sampled now: the killed worker stored none
        worker.tell("s", again.number, again.params["x"])
        assert worker.trials("s")[0].params == again.params  # told against what was handed out


def _ask_in_background(worker: Worker, client: str | None) -> threading.Thread:
    def ask() -> None:
        with contextlib.suppress(WorkerExited):  # the worker may die under this ask
            worker.ask("s", client=client)

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    return asking


def kill_mid_ask(worker: Worker, paused: Path, client: str) -> None:
    """kill -9 of a racing worker once its ask (of study ``s``) reached the race point that
    touches ``paused``."""
    asking = _ask_in_background(worker, client)
    wait_until(paused.exists, f"the ask to reach {paused.name}")
    os.kill(worker.pid, signal.SIGKILL)
    worker.proc.wait()
    asking.join(60)  # the ask saw the worker die, before its pipe is closed


def test_a_worker_killed_right_after_popping_an_enqueued_trial_leaves_it_its_clients(
    tmp_path: Path,
) -> None:
    """kill -9 between the pop of an enqueued trial and anything after it: the client id was
    written before the pop, so the restarted client gets the trial back with its parameters."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    race = tmp_path / "race"
    with racing_worker(storage, race, "popped_waits") as worker:
        worker.create("s", search_space=SPACE)
        worker.enqueue("s", {"x": 0.25})
        kill_mid_ask(worker, race / "popped-paused", "c")
    with Worker.spawn(storage=storage) as worker:
        (again,) = worker.ask("s", client="c")
        assert (again.number, again.resumed) == (0, True)
        assert again.params == {"x": 0.25}


def test_the_worker_that_wins_an_enqueued_trial_names_it(tmp_path: Path) -> None:
    """Two workers write their client ids on one waiting trial, then race for it: the winner's
    id is the one the trial keeps; and a waiting trial named by a worker killed before its pop
    is nobody's once an ask without a client takes it."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with Worker.spawn(storage=storage) as worker:
        worker.create("s", search_space=SPACE)
        worker.enqueue("s", {"x": 0.25})
    a_race, b_race = tmp_path / "a", tmp_path / "b"
    with (
        racing_worker(storage, a_race, "pop_waits") as a,
        racing_worker(storage, b_race, "pop_waits") as b,
    ):
        asking_a = _ask_in_background(a, "a")
        wait_until((a_race / "pop-paused").exists, "a to name the trial")
        asking_b = _ask_in_background(b, "b")
        wait_until((b_race / "pop-paused").exists, "b to name the trial")
        (a_race / "go").touch()  # a pops the trial b named last
        asking_a.join(60)
        (b_race / "go").touch()  # b loses the pop and makes a new trial
        asking_b.join(60)
        assert [(t.number, t.client) for t in a.trials("s")] == [(0, "a"), (1, "b")]
        assert a.trials("s")[0].params == {"x": 0.25}

        a.enqueue("s", {"x": 0.5})
    c_race = tmp_path / "c"
    with racing_worker(storage, c_race, "pop_waits") as c:
        kill_mid_ask(c, c_race / "pop-paused", "c")
    with Worker.spawn(storage=storage) as worker:
        (anonymous,) = worker.ask("s")
        assert (anonymous.number, anonymous.params) == (2, {"x": 0.5})
        assert worker.trials("s")[2].client is UNSET
        (fresh,) = worker.ask("s", client="c")
        assert (fresh.number, fresh.resumed) == (3, UNSET)


def test_concurrent_asks_of_one_client_never_get_a_running_trial_twice(worker: Worker) -> None:
    worker.create("s", search_space=SPACE)
    numbers = [worker.ask("s", client="c")[0].number for _ in range(5)]
    assert numbers == [0, 1, 2, 3, 4]


def test_an_expired_lease_is_no_longer_the_clients(tmp_path: object, storage_url: str) -> None:
    with Worker.spawn(storage=storage_url) as worker:
        worker.create("s", search_space=SPACE)
        (short,) = worker.ask("s", client="c", lease_s=0.5)
        (long,) = worker.ask("s", client="c", lease_s=3600)
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait()
    time.sleep(0.6)
    with Worker.spawn(storage=storage_url) as worker:
        got = worker.ask("s", n=2, client="c")
        assert got[0].number == long.number and got[0].resumed
        assert isinstance(got[0].lease_end, str)  # the lease was renewed by the resume
        assert got[1].number not in (short.number, long.number) and not got[1].resumed


def test_client_ids_are_bounded(worker: Worker) -> None:
    worker.create("s", search_space=SPACE)
    for bad in ("", "c" * 129, 7):
        with pytest.raises(WorkerError) as caught:
            worker.call("ask", {"study": "s", "client": bad})
        assert caught.value.data["field"] == "$.params.client"
    assert worker.trials("s") == []


def test_the_client_travels_with_export_and_a_retry_is_nobodys(worker: Worker) -> None:
    worker.create("s", search_space=SPACE)
    (trial,) = worker.ask("s", client="c", lease_s=0.3, retry=1)
    deadline = time.monotonic() + 60
    while worker.trials("s", ["running"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    (retry,) = worker.ask("s")
    assert retry.params == trial.params
    assert worker.trials("s")[-1].client is UNSET
    snapshot = worker.export("s")
    assert snapshot["body"]["trials"][0]["system_attrs"]["optuna_bridge:client"] == "c"


def test_a_trial_failed_while_it_is_resumed_is_not_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trial a killed worker left without parameters is failed (a lease sweep, another
    worker) just as the resume samples them: the ask skips it and makes a new trial."""
    endpoint = make_endpoint()
    endpoint_result(endpoint, "create", {"study": "s", "search_space": SPACE})
    storage = endpoint.dispatcher.registry.storage
    left = storage.create_new_trial(storage.get_study_id_from_name("s"), asked_by("c"))
    set_param = storage.set_trial_param

    def failed_meanwhile(trial_id: int, *args: Any) -> None:
        if trial_id == left:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        set_param(trial_id, *args)

    monkeypatch.setattr(storage, "set_trial_param", failed_meanwhile)
    (trial,) = endpoint_result(endpoint, "ask", {"study": "s", "client": "c"})["trials"]
    assert trial["number"] == 1 and "resumed" not in trial
    states = [t["state"] for t in endpoint_result(endpoint, "trials", {"study": "s"})["trials"]]
    assert states == ["fail", "running"]
