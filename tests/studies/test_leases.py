"""Trial leases through the real worker: an abandoned trial is failed by the worker itself (and
asked again with ``retry``), on memory, SQLite and PostgreSQL; leases survive a restart and are
honoured by another worker sharing the study."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec import UNSET

from bridge_worker.client import Worker, WorkerError
from tests.servers import PostgresServer

SPACE = {"x": {"type": "float", "low": -10.0, "high": 10.0}}
DEADLINE_S = 2.0
"""The issue's promise: a 1 s lease is failed within 2 s of the ask."""


@pytest.fixture(params=["memory", "sqlite", "postgresql", "journal"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leases.db'}"
    elif request.param == "journal":
        yield f"journal:///{tmp_path / 'leases.log'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        yield server.new_database()


def _wait_for_state(worker: Worker, study: str, number: int, state: str, within: float) -> float:
    """Seconds until trial ``number`` reached ``state`` (polling ``trials``), or fail."""
    started = time.monotonic()
    while time.monotonic() - started < within + 3:
        (trial,) = [t for t in worker.trials(study) if t.number == number]
        if trial.state == state:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"trial {number} did not become {state}")


def test_abandoned_trial_is_failed_and_asked_again(storage_url: str) -> None:
    with Worker.spawn(storage_url) as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        (trial,) = worker.ask("s", lease_s=1, retry=1)
        assert isinstance(trial.lease_end, str)
        _wait_for_state(worker, "s", trial.number, "fail", DEADLINE_S)
        # the worker's own clock, from the ask to the fail (the test's polling, slowed by a busy
        # machine, is not part of the promise)
        (failed,) = [t for t in worker.trials("s", datetimes=True) if t.number == trial.number]
        assert isinstance(failed.datetime_start, str) and isinstance(failed.datetime_complete, str)
        held = datetime.datetime.fromisoformat(
            failed.datetime_complete
        ) - datetime.datetime.fromisoformat(failed.datetime_start)
        assert held.total_seconds() <= DEADLINE_S, held
        (again,) = worker.ask("s")
        assert again.number != trial.number
        assert again.params == trial.params  # the retry: same parameters, a new trial
        with pytest.raises(WorkerError) as late:
            worker.tell("s", trial.number, 1.0)
        assert late.value.kind == "trial_finished"
        assert late.value.data["state"] == "fail"
        worker.tell("s", again.number, 1.0)


def test_retry_budget_is_kept_across_retries() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        (first,) = worker.ask("s", lease_s=0.3, retry=1)
        _wait_for_state(worker, "s", first.number, "fail", 1.5)
        (second,) = worker.ask("s", lease_s=0.3, retry=1)
        assert second.params == first.params
        _wait_for_state(worker, "s", second.number, "fail", 1.5)
        (third,) = worker.ask("s")  # budget spent: a fresh sample
        assert third.params != first.params
        assert [t.state for t in worker.trials("s", states=["waiting"])] == []


def test_without_retry_an_abandoned_trial_is_only_failed() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        (trial,) = worker.ask("s", lease_s=0.3)
        _wait_for_state(worker, "s", trial.number, "fail", 1.5)
        (fresh,) = worker.ask("s")
        assert fresh.params != trial.params


def test_renew_and_report_keep_a_trial_alive() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        # the lease outlasts a renew and a report many times over, as measured now (a fixed
        # 0.8 s lease renewed every 0.4 s raced the calls on a busy machine)
        started = time.monotonic()
        (probe,) = worker.ask("s", lease_s=60)
        worker.renew("s", probe.number)
        worker.call("report", {"study": "s", "number": probe.number, "step": 0, "value": 1.0})
        worker.tell("s", probe.number, 1.0)
        lease_s = max(0.8, 8 * (time.monotonic() - started))
        renewed, reported = worker.ask("s", n=2, lease_s=lease_s)
        # twice the lease, renewing and reporting every tenth of it (every half raced the calls
        # on a busy machine: a sleep that overran by a few calls' time ended the lease)
        until, step = time.monotonic() + 2 * lease_s, 0
        while time.monotonic() < until:
            time.sleep(lease_s / 10)
            result = worker.renew("s", renewed.number)
            assert result.number == renewed.number
            worker.call(
                "report", {"study": "s", "number": reported.number, "step": step, "value": 1.0}
            )
            step += 1
        states = {t.number: t.state for t in worker.trials("s") if t.number != probe.number}
        assert states == {renewed.number: "running", reported.number: "running"}
        worker.tell("s", renewed.number, 1.0)
        worker.tell("s", reported.number, 2.0)
        time.sleep(lease_s + 0.2)  # past the lease: a told trial is not failed by it
        assert {t.state for t in worker.trials("s")} == {"complete"}


def test_renew_with_a_new_length_and_trials_shows_the_lease_end() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE)
        (trial,) = worker.ask("s", lease_s=5)
        before = datetime.datetime.now(datetime.UTC)
        end = worker.renew("s", trial.number, lease_s=3600).lease_end
        lease_end = datetime.datetime.fromisoformat(end)
        assert 3590 < (lease_end - before).total_seconds() < 3610
        (running,) = worker.trials("s", states=["running"])
        assert running.lease_end == end
        worker.tell("s", trial.number, 1.0)
        (told,) = worker.trials("s")
        assert told.lease_end is UNSET  # only running trials show a lease


def test_lease_errors() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE)
        (plain,) = worker.ask("s")
        with pytest.raises(WorkerError) as no_lease:
            worker.renew("s", plain.number)
        assert no_lease.value.kind == "invalid_params"
        assert no_lease.value.data["field"] == "$.params.lease_s"
        worker.renew("s", plain.number, lease_s=60)  # a lease can be started later
        worker.tell("s", plain.number, 1.0)
        with pytest.raises(WorkerError) as finished:
            worker.renew("s", plain.number)
        assert finished.value.kind == "trial_finished"
        with pytest.raises(WorkerError) as missing:
            worker.renew("s", 99)
        assert missing.value.kind == "trial_not_found"
        for bad in ({"lease_s": 0}, {"lease_s": -1}, {"retry": 1}, {"lease_s": 1, "retry": -1}):
            with pytest.raises(WorkerError) as invalid:
                worker.call("ask", {"study": "s", **bad})
            assert invalid.value.kind == "invalid_params", bad


def test_lease_survives_a_restart(tmp_path: Path) -> None:
    """The lease is stored with the trial: a worker killed with the trial out, and a new one
    started on the same storage, fails it without any ask."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = Worker.spawn(url)
    first.create("s", search_space=SPACE)
    (trial,) = first.ask("s", lease_s=1, retry=1)
    first.proc.kill()
    first.close()
    with Worker.spawn(url) as second:
        assert [t.state for t in second.trials("s")] in (["running"], ["fail", "waiting"])
        _wait_for_state(second, "s", trial.number, "fail", DEADLINE_S)
        (again,) = second.ask("s")
        assert again.params == trial.params


def test_leases_are_honoured_by_every_worker_on_shared_postgres(postgres_url: str) -> None:
    """The worker that asked dies; another worker serving the study fails the trial."""
    with Worker.spawn(postgres_url) as other:
        other.create("s", search_space=SPACE, load_if_exists=True)
        asker = Worker.spawn(postgres_url)
        (trial,) = asker.ask("s", lease_s=1, retry=1)
        asker.proc.kill()
        asker.close()
        _wait_for_state(other, "s", trial.number, "fail", 3.0)
        (again,) = other.ask("s")
        assert again.params == trial.params


def test_a_heartbeat_retry_does_not_inherit_the_lease(tmp_path: Path) -> None:
    """Optuna's heartbeat retry copies every system attr of the failed trial; the retry, asked
    without a lease, must not be failed when the old trial's lease would have ended."""
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    args = ["--heartbeat", "1", "--grace-period", "1", "--retry-failed", "1"]
    started = time.monotonic()
    first = Worker.spawn(url, args=args)
    first.create("s", search_space=SPACE)
    # The second worker's ask must come before the old lease ends (a trial whose lease ended is
    # failed by the lease, without a retry): the lease outlasts the stale heartbeat and a start
    # as slow as this one, four times over (a fixed 5 s raced a slow start on a busy machine).
    lease_s = max(5.0, 1.5 + 4 * (time.monotonic() - started))
    (trial,) = first.ask("s", lease_s=lease_s)
    asked_at = time.monotonic()
    first.proc.kill()
    first.close()
    time.sleep(1.5)  # the heartbeat goes stale
    with Worker.spawn(url, args=args) as second:
        (retried,) = second.ask("s")
        assert retried.params == trial.params and isinstance(retried.lease_end, type(UNSET))
        # past the old lease, a sweep
        time.sleep(max(0.0, asked_at + lease_s + 2.5 - time.monotonic()))
        states = {t.number: t.state for t in second.trials("s")}
        assert states == {trial.number: "fail", retried.number: "running"}


def test_a_new_worker_first_read_sees_an_ended_lease_as_failed(tmp_path: Path) -> None:
    """Readers see a trial whose lease ended while its worker was dead as failed at once (not
    at the lease thread's next sweep): the first ``trials`` of a new worker already says so."""
    url = f"sqlite:///{tmp_path / 'late.db'}"
    first = Worker.spawn(url)
    first.create("s", search_space=SPACE)
    first.ask("s", lease_s=0.5)
    first.proc.kill()
    first.close()
    time.sleep(0.6)  # the lease has ended while no worker was alive
    with Worker.spawn(url) as second:
        assert [t.state for t in second.trials("s")] == ["fail"]
        assert second.list_studies()[0].n_running == 0


def test_a_reader_sees_an_ended_lease_at_its_deadline() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE)
        worker.ask("s", lease_s=0.3)
        time.sleep(0.35)
        assert [t.state for t in worker.trials("s")] == ["fail"]
        assert worker.list_studies()[0].n_running == 0
