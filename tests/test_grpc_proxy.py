"""Scale-out through Optuna's gRPC storage proxy: ``optuna-bridge proxy`` in front of a real
throw-away PostgreSQL, workers with ``--storage grpc://host:port``."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers import free_port

from bridge_worker.client import Worker, WorkerError

pytest.importorskip("grpc", reason="pip install 'optuna-bridge[grpc]'")

SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "y": {"type": "int", "low": -5, "high": 5},
}


def start_proxy(storage: str) -> tuple[subprocess.Popen[bytes], int]:
    """``optuna-bridge proxy`` on a free port, once it says it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge_worker", "proxy", "--storage", storage,
         "--host", "127.0.0.1", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        raise AssertionError("the proxy did not start within 30 s")
    line = json.loads(proc.stdout.readline())
    assert line["proxy"] == "ready" and line["storage"] == storage.split("+")[0].split(":")[0]
    return proc, int(line["port"])


@pytest.fixture
def proxy_url(postgres_url: str) -> Iterator[str]:
    proc, port = start_proxy(postgres_url)
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def _optimize(url: str, n_trials: int) -> list[int]:
    numbers = []
    with Worker.spawn(url) as worker:
        assert worker.ready.storage == "grpc"
        worker.create("shared", search_space=SPACE, load_if_exists=True,
                      sampler={"type": "tpe", "constant_liar": True, "n_startup_trials": 10})
        for _ in range(n_trials):
            (trial,) = worker.ask("shared")
            x, y = float(trial.params["x"]), int(trial.params["y"])  # type: ignore[arg-type]
            worker.tell("shared", trial.number, value=x * x + y * y)
            numbers.append(trial.number)
    return numbers


def test_four_workers_through_the_proxy_share_one_study(
    proxy_url: str, postgres_url: str
) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        per_worker = list(pool.map(_optimize, [proxy_url] * 4, [100] * 4))
    elapsed = time.monotonic() - started
    numbers = [n for numbers in per_worker for n in numbers]
    assert sorted(numbers) == list(range(400)), elapsed  # unique, none lost
    with Worker.spawn(postgres_url) as direct:  # what the database itself holds
        trials = direct.trials("shared")
        assert len(trials) == 400
        assert all(t.state == "complete" and t.values is not None for t in trials)
        assert sorted(t.number for t in trials) == list(range(400))


def test_leases_through_the_proxy(proxy_url: str) -> None:
    with Worker.spawn(proxy_url) as worker:
        worker.create("s", search_space=SPACE)
        (trial,) = worker.ask("s", lease_s=0.5, retry=1)
        deadline = time.monotonic() + 3
        while worker.trials("s")[0].state != "fail":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (again,) = worker.ask("s")
        assert again.params == trial.params


def test_proxy_refuses_a_journal_storage(tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "proxy", "--storage", "journal:///tmp/x.log"],
        capture_output=True, timeout=60,
    )
    assert done.returncode == 2
    assert b"cannot serve a journal storage" in done.stderr


def test_bad_grpc_urls_and_heartbeats_are_refused_at_start() -> None:
    for args in (["--storage", "grpc://127.0.0.1"], ["--storage", "grpc://:13000"],
                 ["--storage", "grpc://127.0.0.1:1", "--heartbeat", "5"]):
        done = subprocess.run([sys.executable, "-m", "bridge_worker", *args],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2, args


def test_no_proxy_listening_is_a_storage_error_not_a_crash() -> None:
    with Worker.spawn(f"grpc://127.0.0.1:{free_port()}") as worker:
        assert worker.ready.storage == "grpc"
        with pytest.raises(WorkerError) as caught:
            worker.create("s")
        assert caught.value.kind == "storage_error"
        assert "no gRPC storage proxy answers" in caught.value.message
        assert worker.ping()
