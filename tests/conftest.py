"""Shared fixtures: a real worker process through the Python client, and an in-process endpoint."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge_worker.client import Worker
from bridge_worker.wire.rpc import Endpoint
from tests import races, servers
from tests.helpers import make_endpoint


@pytest.fixture
def worker() -> Iterator[Worker]:
    """A real worker process on in-memory storage, line framing."""
    with Worker.spawn() as w:
        yield w


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.PostgresServer]:
    """One throw-away PostgreSQL server for the session (each test takes its own database)."""
    yield from servers.postgres_server()


@pytest.fixture
def postgres_url(postgres: servers.PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each durable storage a study can be shared on: a new file, or a new PostgreSQL database.
    Tests parametrized over ``"fake"`` too (indirectly) also run on the test-only backend of
    ``tests/fake_storage/``."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    if request.param == "journal":
        return f"journal:///{tmp_path / 'studies.log'}"
    if request.param == "fake":
        return fake_storage_url(tmp_path, request.getfixturevalue("monkeypatch"))
    url: str = request.getfixturevalue("postgres_url")
    return url


FAKE_STORAGE = Path(__file__).resolve().parent / "fake_storage"


def fake_storage_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``fakejournal://`` URL: its backend registered here, and in every worker this test
    starts (the backend's directory on ``PYTHONPATH``)."""
    if "fake_storage_backend" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "fake_storage_backend", FAKE_STORAGE / "sitecustomize.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    path = os.pathsep.join(filter(None, [str(FAKE_STORAGE), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    return f"fakejournal://{tmp_path / 'studies.log'}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    for server in servers.redis_server():
        yield server.url


@pytest.fixture
def url_of(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A new storage URL of a kind (memory, sqlite, journal, postgresql, redis), for tests that
    run one scenario on every storage; the servers start only for the kinds asked."""

    def make(kind: str) -> str:
        return races.storage_for(
            kind,
            tmp_path,
            lambda: str(request.getfixturevalue("postgres_url")),
            lambda: str(request.getfixturevalue("redis_url")),
        )

    return make


@pytest.fixture
def endpoint() -> Endpoint:
    return make_endpoint()


LONGEST_FIRST = (
    "tests/studies/test_import_swap.py",
    "tests/storage/test_crash_recovery.py",
    "tests/studies/test_determinism.py",
    "tests/studies/test_one_outcome.py",
    "tests/install/test_bench.py",
    "tests/storage/test_grpc_proxy.py",
    "tests/install/test_packaging.py",
    "tests/io/test_server_liveness.py",
    "tests/storage/test_shared_storage.py",
    "tests/io/test_io_path.py",
    "tests/storage/test_rdb_delete.py",
    "tests/studies/test_leases.py",
    "tests/studies/test_stop_rules.py",
    "tests/storage/test_postgres.py",
    "tests/studies/test_snapshot.py",
    "tests/studies/test_trial_identity.py",
)
"""The files that take longest (summed test time of one `make pytest`, longest first). With
``--dist loadfile --no-loadscope-reorder`` (the Makefile) xdist hands out files in collection
order, so these start first and no long file starts last and runs alone at the end; xdist's own
order (most tests first) left the long files of few tests for the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
