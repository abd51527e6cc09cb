"""One outcome per trial (issue 29, item 1): the finish of a trial is a compare-and-set on its
state on every storage. Exactly one finisher wins; every other gets ``trial_finished`` with the
stored state and values; no success reply carries values other than its own request's.

The races are made to happen every time with race points inside real worker processes
(``tests/race_hooks``): two workers meet at a barrier just before they write the finish, or one
side waits while the other finishes the trial.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from bridge_worker.client import Worker, WorkerError
from tests.races import racing_worker, wait_until

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
ALL = ["memory", "sqlite", "journal", "postgresql", "redis"]
SHARED = ["sqlite", "journal", "postgresql", "redis"]


def _name() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def _lose_to_the_lease_sweep(
    w: Worker,
    study: str,
    meet: Path,
    method: str,
    params: dict[str, Any],
    paused: str,
) -> dict[str, Any]:
    """Ask a trial with a short lease, hold ``method`` of it at its write (race point ``paused``)
    until the lease sweep has failed the trial, then let it go: its reply must be
    ``trial_finished`` with the stored state ``fail``; returns that error's data.

    The lease must outlast the way of ``method`` to its write (a trial whose lease ended is
    failed by the first read, and ``method`` never reaches the write): it is many times a read of
    the study measured now, not a fixed 0.3 s a loaded machine could spend on that way."""
    started = time.monotonic()
    w.trials(study)
    lease_s = max(0.3, 20 * (time.monotonic() - started))
    (trial,) = w.ask(study, lease_s=lease_s)
    sent = w.send(method, {"study": study, "number": trial.number, **params})
    wait_until((meet / paused).exists, f"the {method} to reach its write")
    wait_until((meet / "sweep-failed-1").exists, "the lease sweep to fail the trial")
    (meet / "go").touch()
    reply = w.receive()
    assert reply.id == sent
    assert reply.error is not UNSET, reply.result
    assert reply.error.data["kind"] == "trial_finished"
    assert reply.error.data["state"] == "fail"
    data: dict[str, Any] = reply.error.data
    return data


@pytest.mark.parametrize("kind", SHARED)
def test_two_tells_of_one_trial_at_once_have_one_winner(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    meet = tmp_path / "meet"
    with (
        racing_worker(url, meet, "finish_barrier") as a,
        racing_worker(url, meet, "finish_barrier") as b,
    ):
        a.create(study, search_space=SPACE)
        (trial,) = a.ask(study)
        b.create(study, load_if_exists=True)
        id_a = a.send("tell", {"study": study, "number": trial.number, "value": 1.0})
        id_b = b.send("tell", {"study": study, "number": trial.number, "value": 2.0})
        replies = {1.0: a.receive(), 2.0: b.receive()}
        assert replies[1.0].id == id_a and replies[2.0].id == id_b
        winners = [v for v, r in replies.items() if r.error is UNSET]
        assert len(winners) == 1, replies
        (won,) = winners
        (lost,) = [r for r in replies.values() if r.error is not UNSET]
        assert msgspec.json.decode(replies[won].result)["values"] == [won]
        assert lost.error is not UNSET
        assert lost.error.data["kind"] == "trial_finished"
        assert lost.error.data["state"] == "complete"
        assert lost.error.data["values"] == [won]
        (stored,) = a.trials(study)
        assert stored.values == [won]


def test_two_tells_through_the_grpc_proxy_have_one_winner(
    postgres_url: str,
    tmp_path: Path,
) -> None:
    pytest.importorskip("grpc")
    from tests.servers import start_proxy

    proc, port = start_proxy(postgres_url)
    try:
        url = f"grpc://127.0.0.1:{port}"
        meet = tmp_path / "meet"
        with (
            racing_worker(url, meet, "finish_barrier") as a,
            racing_worker(url, meet, "finish_barrier") as b,
        ):
            a.create("s", search_space=SPACE)
            (trial,) = a.ask("s")
            a.send("tell", {"study": "s", "number": trial.number, "value": 1.0})
            b.send("tell", {"study": "s", "number": trial.number, "value": 2.0})
            replies = {1.0: a.receive(), 2.0: b.receive()}
            (won,) = [v for v, r in replies.items() if r.error is UNSET]
            (lost,) = [r for r in replies.values() if r.error is not UNSET]
            assert lost.error is not UNSET
            assert lost.error.data["kind"] == "trial_finished"
            assert lost.error.data["values"] == [won]
            assert [t.values for t in b.trials("s")] == [[won]]
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.parametrize("kind", ALL)
def test_a_tell_that_loses_to_the_lease_sweep_is_trial_finished_not_a_failed_success(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "finish_waits", "sweep_marks") as w:
        w.create(study, search_space=SPACE)
        data = _lose_to_the_lease_sweep(w, study, meet, "tell", {"value": 0.5}, "finish-paused")
        assert data["values"] is None
        (stored,) = w.trials(study)
        assert stored.state == "fail"


@pytest.mark.parametrize("kind", ALL)
def test_a_renew_is_never_acknowledged_while_the_sweep_fails_the_trial(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "sweep_waits") as w:
        w.create(study, search_space=SPACE)
        (trial,) = w.ask(study, lease_s=0.3, retry=1)
        wait_until((meet / "sweep-paused").exists, "the sweep to decide to fail the trial")
        try:
            renewed = w.renew(study, trial.number, lease_s=60)
        except WorkerError as error:
            renewed = None
            assert error.kind == "trial_finished" and error.data["state"] == "fail"
        (meet / "go").touch()
        wait_until((meet / "sweep-done").exists, "the sweep's fail to be written or refused")

        def settled() -> bool:
            return len(w.trials(study)) == 2  # the failed trial and its one retry

        if renewed is not None:  # acknowledged: the trial must stay running
            (stored,) = w.trials(study)
            assert stored.state == "running", "a renew was acknowledged but the trial failed"
        else:
            wait_until(settled, "the retry")
            first, retry = w.trials(study)
            assert (first.state, retry.state) == ("fail", "waiting")


@pytest.mark.parametrize("method", ["report", "set_attrs"])
@pytest.mark.parametrize("kind", ALL)
def test_report_and_set_attrs_of_a_trial_finished_meanwhile_are_trial_finished(
    kind: str,
    method: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    meet = tmp_path / "meet"
    extra = {"step": 1, "value": 0.5} if method == "report" else {"user_attrs": {"k": 1}}
    with racing_worker(url, meet, "write_waits", "sweep_marks") as w:
        w.create(study, search_space=SPACE)
        _lose_to_the_lease_sweep(w, study, meet, method, extra, "write-paused")
        (stored,) = w.trials(study)
        assert stored.state == "fail" and stored.user_attrs == {}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_kill_between_a_lease_fail_and_its_retry_loses_no_retry(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "sweep_dies") as w:
        w.create(study, search_space=SPACE)
        (trial,) = w.ask(study, lease_s=0.2, retry=2)
        wait_until((meet / "sweep-failed").exists, "the sweep to fail the trial")
        w.proc.kill()
        w.proc.wait()
    with Worker.spawn(url) as again:
        (retried,) = again.ask(study)
        assert retried.params == trial.params
        numbers = [t.number for t in again.trials(study)]
        assert numbers == [0, 1]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "journal"])
def test_add_trials_that_fails_part_way_says_which_numbers_were_stored(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = _name()
    with racing_worker(url, tmp_path / "meet", fail_add_at=3) as w:
        w.create(study, search_space=SPACE)
        w.add_trials(study, [{"params": {"x": 0.5}, "value": 9.0}])  # the 1st write
        batch = [{"params": {"x": i / 10}, "value": float(i)} for i in range(4)]
        with pytest.raises(WorkerError) as caught:
            w.add_trials(study, batch)  # its 2nd trial is the 3rd write: it fails
        assert caught.value.kind == "storage_error"
        stored = caught.value.data["stored"]
        assert stored == [1]
        rest = batch[len(stored) :]
        assert w.add_trials(study, rest) == [2, 3, 4]
        assert [t.values for t in w.trials(study)] == [[9.0], [0.0], [1.0], [2.0], [3.0]]
