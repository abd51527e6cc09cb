"""Scale-out through Optuna's gRPC storage proxy: ``optuna-bridge proxy`` in front of a real
throw-away PostgreSQL, workers with ``--storage grpc://host:port``."""

from __future__ import annotations

import array
import datetime
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bridge_worker.client import Worker, WorkerError
from tests.servers import PROXY, free_port, start_proxy

pytest.importorskip("grpc", reason="pip install 'optuna-bridge[grpc]'")

SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "y": {"type": "int", "low": -5, "high": 5},
}


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
        worker.create(
            "shared",
            search_space=SPACE,
            load_if_exists=True,
            sampler={"type": "tpe", "constant_liar": True, "n_startup_trials": 10},
        )
        for _ in range(n_trials):
            (trial,) = worker.ask("shared")
            x, y = float(trial.params["x"]), int(trial.params["y"])  # type: ignore[arg-type]
            worker.tell("shared", trial.number, value=x * x + y * y)
            numbers.append(trial.number)
    return numbers


def test_four_workers_through_the_proxy_share_one_study(proxy_url: str, postgres_url: str) -> None:
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
        deadline = time.monotonic() + 60
        while worker.trials("s")[0].state != "fail":
            assert time.monotonic() < deadline, "the lease never ended"
            time.sleep(0.05)
        # the worker's own clock, from the ask to the fail (the test's polling through the proxy,
        # slowed by a busy machine, is not part of the promise: failed within 2 s)
        (failed,) = [t for t in worker.trials("s", datetimes=True) if t.number == trial.number]
        assert isinstance(failed.datetime_start, str) and isinstance(failed.datetime_complete, str)
        held = datetime.datetime.fromisoformat(
            failed.datetime_complete
        ) - datetime.datetime.fromisoformat(failed.datetime_start)
        assert 0.5 <= held.total_seconds() <= 2.0, held
        (again,) = worker.ask("s")
        assert again.params == trial.params


def test_proxy_refuses_a_journal_storage(tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "proxy", "--storage", "journal:///tmp/x.log"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"cannot serve a journal storage" in done.stderr


def test_bad_grpc_urls_and_heartbeats_are_refused_at_start(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("secret")
    for args in (
        ["--storage", "grpc://127.0.0.1"],
        ["--storage", "grpc://:13000"],
        ["--storage", "grpc://127.0.0.1:1", "--heartbeat", "5"],
        ["--storage", "grpc://127.0.0.1:1", "--proxy-token-file", str(short)],
        ["--storage", "grpc://127.0.0.1:1", "--proxy-token-file", "/no/such/file"],
        ["--storage", "grpc://127.0.0.1:1", "--proxy-tls-ca", str(short)],
        ["--storage", "grpc://127.0.0.1:1", "--proxy-timeout", "0"],
        ["--storage", "memory", "--proxy-tls-ca", str(short)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bridge_worker", *args],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, args
        assert done.stderr.startswith(b"usage: optuna-bridge"), done.stderr


def test_no_proxy_listening_is_a_storage_error_not_a_crash() -> None:
    with Worker.spawn(f"grpc://127.0.0.1:{free_port()}") as worker:
        assert worker.ready.storage == "grpc"
        with pytest.raises(WorkerError) as caught:
            worker.create("s")
        assert caught.value.kind == "storage_error"
        assert "the storage proxy at 127.0.0.1:" in caught.value.message
        assert "is unreachable" in caught.value.message
        assert worker.ping()


# ---- one proxy per port, never mute (issue 28) -------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    proc.wait(15)


def test_a_second_proxy_on_a_port_in_use_is_refused(tmp_path: Path) -> None:
    first, port = start_proxy(f"sqlite:///{tmp_path}/a.db")
    try:
        second = subprocess.run(
            [*PROXY, "--storage", "memory", "--port", str(port)],
            capture_output=True,
            timeout=60,
        )
        assert second.returncode != 0, "the second proxy listened on the same port"
        assert second.stdout == b""  # never said ready
        assert str(port) in second.stderr.decode(), second.stderr
        assert b"in use" in second.stderr
        with Worker.spawn(f"grpc://127.0.0.1:{port}") as worker:  # the first one still serves
            worker.create("s")
            assert [s.study for s in worker.list_studies()] == ["s"]
    finally:
        _stop(first)


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("bogus://x", "unknown storage scheme 'bogus'"),
        ("sqlite:////no/such/dir/x.db", "'/no/such/dir' of the storage file does not exist"),
        ("mysql+pymysql://u@127.0.0.1/db", "driver for 'mysql+pymysql' is not installed"),
    ],
)
def test_an_unusable_storage_url_exits_2_with_a_usage_message(storage: str, expected: str) -> None:
    done = subprocess.run(
        [*PROXY, "--storage", storage, "--log-level", "debug"], capture_output=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(b"usage: optuna-bridge proxy")
    assert expected in done.stderr.decode()


def test_a_storage_that_cannot_be_opened_says_why_before_exit(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    done = subprocess.run(
        [*PROXY, "--storage", f"sqlite:///{tmp_path}/a-directory.db", "--port", "0"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [e["event"] for e in events if e["level"] == "error"] == ["storage_unavailable"]


# ---- a proxy nobody else can use (issue 29) ----------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(os.urandom(24).hex() + "\n")
    return path


def test_a_public_host_needs_a_token(token_file: Path) -> None:
    done = subprocess.run(
        [*PROXY, "--storage", "memory", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"--token-file" in done.stderr and b"run code in workers" in done.stderr
    proc, _ = start_proxy(
        "memory", ["--host", "0.0.0.0", "--port", "0", "--token-file", str(token_file)]
    )
    _stop(proc)


def test_calls_without_the_token_are_refused(tmp_path: Path, token_file: Path) -> None:
    proc, port = start_proxy(
        f"sqlite:///{tmp_path}/s.db", ["--port", "0", "--token-file", str(token_file)]
    )
    url = f"grpc://127.0.0.1:{port}"
    wrong = tmp_path / "wrong"
    wrong.write_text("x" * 32)
    try:
        for args in ([], ["--proxy-token-file", str(wrong)]):
            with Worker.spawn(url, args=args) as stranger:
                with pytest.raises(WorkerError) as caught:
                    stranger.create("s")
                assert caught.value.kind == "storage_error"
                assert f"the storage proxy at 127.0.0.1:{port} refused this worker" in (
                    caught.value.message
                )
        with Worker.spawn(url, args=["--proxy-token-file", str(token_file)]) as worker:
            worker.create("s", search_space=SPACE)
            (trial,) = worker.ask("s")
            worker.tell("s", trial.number, value=1.0)
        with Worker.spawn(f"sqlite:///{tmp_path}/s.db") as direct:  # only the token's writes
            assert [t.values for t in direct.trials("s")] == [[1.0]]
    finally:
        _stop(proc)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_with_a_self_signed_certificate(tmp_path: Path, token_file: Path) -> None:
    cert, key = _self_signed(tmp_path)
    proc, port = start_proxy(
        "memory",
        [
            "--port",
            "0",
            "--token-file",
            str(token_file),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
    )
    url = f"grpc://127.0.0.1:{port}"
    token = ["--proxy-token-file", str(token_file)]
    try:
        with Worker.spawn(url, args=[*token, "--proxy-tls-ca", str(cert)]) as worker:
            worker.create("s", search_space=SPACE)
            assert len(worker.ask("s", n=2)) == 2
        with Worker.spawn(url, args=token) as plaintext, pytest.raises(WorkerError) as caught:
            plaintext.trials("s")
        assert caught.value.kind == "storage_error"
        assert "unreachable" in caught.value.message
    finally:
        _stop(proc)


def test_a_stalled_proxy_is_a_storage_error_within_the_timeout_and_sigterm_works(
    tmp_path: Path,
) -> None:
    proc, port = start_proxy(f"sqlite:///{tmp_path}/s.db")
    timeout_s = 1.5
    try:
        with Worker.spawn(
            f"grpc://127.0.0.1:{port}", args=["--proxy-timeout", str(timeout_s)]
        ) as worker:
            worker.create("s", search_space=SPACE)
            started = time.monotonic()
            worker.trials("s")
            answered = time.monotonic() - started  # a call of a live proxy, on this machine now
            proc.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            with pytest.raises(WorkerError) as caught:
                worker.trials("s")
            waited = time.monotonic() - started
            assert caught.value.kind == "storage_error"
            assert "did not answer within 1.5 s" in caught.value.message
            assert timeout_s <= waited < timeout_s + 10 * answered + 5, waited
            # SIGTERM during a stalled call: the worker exits once that call's deadline passed
            worker.send("trials", {"study": "s"})
            _wait_read_by(worker)  # the frame is in the worker's hands (a fixed 0.2 s raced it)
            started = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(timeout_s + 30) == 0
            assert time.monotonic() - started < timeout_s + 10 * answered + 5
    finally:
        _stop(proc)


def _wait_read_by(worker: Worker) -> None:
    """Wait until the worker has taken every byte sent from its stdin pipe."""
    assert worker.proc.stdin is not None
    pending = array.array("i", [0])
    deadline = time.monotonic() + 60
    while True:
        fcntl.ioctl(worker.proc.stdin.fileno(), termios.FIONREAD, pending)
        if pending[0] == 0:
            return
        assert time.monotonic() < deadline, f"the worker left {pending[0]} bytes unread"
        time.sleep(0.01)


def test_a_proxy_that_went_down_is_named_in_the_error(tmp_path: Path) -> None:
    proc, port = start_proxy(f"sqlite:///{tmp_path}/s.db")
    with Worker.spawn(f"grpc://127.0.0.1:{port}") as worker:
        worker.create("s")
        _stop(proc)
        with pytest.raises(WorkerError) as caught:
            worker.trials("s")
        assert caught.value.kind == "storage_error"
        assert f"the storage proxy at 127.0.0.1:{port} is unreachable" in caught.value.message
        assert "_InactiveRpcError" not in caught.value.message


def test_the_cache_never_serves_a_deleted_studys_trials(tmp_path: Path) -> None:
    """SQLite gives a deleted study's id to the next study created: a worker that cached the
    old study's trials must not serve them as the new study's."""
    proc, port = start_proxy(f"sqlite:///{tmp_path}/s.db")
    url = f"grpc://127.0.0.1:{port}"
    try:
        with Worker.spawn(url) as reader, Worker.spawn(url) as other:
            reader.create("s", search_space=SPACE)
            for _ in range(3):
                (trial,) = reader.ask("s")
                reader.tell("s", trial.number, value=1.0)
            assert len(reader.trials("s")) == 3  # cached by the reader's gRPC client
            other.delete("s")
            other.create("s", search_space=SPACE)
            assert reader.trials("s") == []
            (trial,) = other.ask("s")
            assert [t.number for t in reader.trials("s")] == [trial.number]
    finally:
        _stop(proc)
