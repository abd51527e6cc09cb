"""Real worker processes with race points (``tests/race_hooks/sitecustomize.py``) and a shared
directory to meet in: the races a reliability audit found, made to happen every time."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge_worker.client import Worker

HOOKS = Path(__file__).resolve().parent / "race_hooks"


def race_env(
    directory: Path,
    *hooks: str,
    parties: int = 2,
    fail_add_at: int = 0,
    kill_at: int = 0,
    pause_at: int = 0,
) -> dict[str, str]:
    env = dict(os.environ)
    env["BRIDGE_RACE_FAIL_ADD_AT"] = str(fail_add_at)
    env["BRIDGE_RACE_KILL_AT"] = str(kill_at)
    env["BRIDGE_RACE_PAUSE_AT"] = str(pause_at)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOKS), env.get("PYTHONPATH")]))
    env["BRIDGE_RACE_DIR"] = str(directory)
    env["BRIDGE_RACE_HOOKS"] = ",".join(hooks)
    env["BRIDGE_RACE_PARTIES"] = str(parties)
    return env


@contextmanager
def racing_worker(
    storage: str,
    directory: Path,
    *hooks: str,
    parties: int = 2,
    fail_add_at: int = 0,
    args: tuple[str, ...] = (),
) -> Iterator[Worker]:
    directory.mkdir(parents=True, exist_ok=True)
    env = race_env(directory, *hooks, parties=parties, fail_add_at=fail_add_at)
    with Worker.spawn(storage, env=env, args=args) as w:
        yield w


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll with a generous deadline (the machine is shared and slow at times)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def storage_for(
    kind: str, tmp_path: Path, postgres_url: Callable[[], str], redis_url: Callable[[], str]
) -> str:
    if kind == "memory":
        return "memory"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    if kind == "journal":
        return f"journal:///{tmp_path / 'studies.log'}"
    if kind == "redis":
        return redis_url()
    return postgres_url()
