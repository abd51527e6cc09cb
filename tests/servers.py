"""Throw-away servers for the tests: a real PostgreSQL and a real Redis on 127.0.0.1, and
``optuna-bridge proxy`` (Optuna's gRPC storage proxy) in front of a storage.

Each server lives in a temporary directory on a free port and is stopped when the session ends.
When a server's binaries are missing they are installed with apt if we are root (CI, a fresh
container); otherwise the tests that need them are skipped with the reason, except under
``CI=true``, where a missing server is a failure: CI must prove every storage.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI must run these tests)")
    pytest.skip(f"SKIPPED, {reason}")


def _apt_install(package: str) -> bool:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
    install = subprocess.run(
        # Waits for the dpkg lock: the Elixir stage of `make test` may be installing meanwhile.
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", package],
        env=env,
        capture_output=True,
    )
    return update.returncode == 0 and install.returncode == 0


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL cluster in a temp dir. ``stop``/``start`` let tests take it away mid-run."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="optuna-bridge-pg-"))
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            "data",
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        self.start()
        self._databases = 0

    def new_database(self) -> str:
        """A fresh, empty database on this server, as the URL a worker's --storage takes."""
        self._databases += 1
        name = f"bridge{self._databases}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run("pg_ctl", "-D", "data", "-l", "log", "-w", "-o", options, "start")

    def ensure_running(self) -> None:
        status = subprocess.run(
            self._command("pg_ctl", "-D", "data", "status"), cwd=self.dir, capture_output=True
        )
        if status.returncode != 0:
            self.start()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(self._command(program, *args), cwd=self.dir, check=True, capture_output=True)


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="optuna-bridge-redis-"))
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.close()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_server() -> Iterator[PostgresServer]:
    bindir = _postgres_bin()
    if bindir is None and _apt_install("postgresql"):
        bindir = _postgres_bin()
    if bindir is None:
        _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        return
    pytest.importorskip("psycopg2", reason="pip install 'optuna-bridge[postgres]'")
    server = PostgresServer(bindir)
    try:
        yield server
    finally:
        server.close()


def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None and _apt_install("redis-server"):
        binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
        return
    pytest.importorskip("redis", reason="pip install 'optuna-bridge[redis]'")
    server = RedisServer(binary)
    try:
        yield server
    finally:
        server.close()


PROXY = [sys.executable, "-m", "bridge_worker", "proxy"]


def start_proxy(
    storage: str, args: Sequence[str] = ("--host", "127.0.0.1", "--port", "0")
) -> tuple[subprocess.Popen[bytes], int]:
    """``optuna-bridge proxy`` on a free port, once it says it listens."""
    proc = subprocess.Popen(
        [*PROXY, "--storage", storage, "--log-level", "warning", *args],
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
