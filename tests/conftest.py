"""Shared fixtures: a real worker process through the Python client, and an in-process endpoint."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers

from bridge_worker.client import Worker
from bridge_worker.dispatch import Dispatcher, build_methods
from bridge_worker.handlers import ALL
from bridge_worker.registry import StudyRegistry
from bridge_worker.rpc import Endpoint
from bridge_worker.storage import StorageOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "protocol" / "examples"
PYTHON = sys.executable
IN_CI = os.environ.get("CI", "").lower() == "true"


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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    for server in servers.redis_server():
        yield server.url


def make_endpoint(storage: str = "memory") -> Endpoint:
    """The worker's logic without any process or pipe."""
    return Endpoint(Dispatcher(StudyRegistry(StorageOptions(storage)), build_methods(ALL)))


@pytest.fixture
def endpoint() -> Endpoint:
    return make_endpoint()
