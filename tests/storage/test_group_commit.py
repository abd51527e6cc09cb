"""Which storages group-commit is the backend's answer (:meth:`Backend.group_commits` from the
URL before opening, :meth:`Backend.group_committer` after), never a guess from the opened
storage's attributes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge_worker.storage.handle import StorageHandle
from bridge_worker.storage.options import StorageOptions


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///{tmp}/a.db", True),
        ("sqlite+pysqlite:///{tmp}/a.db?timeout=5", True),
        ("sqlite:///:memory:", False),
        ("journal:///{tmp}/a.log", True),
        ("memory", False),
    ],
)
def test_the_backend_says_which_storages_group_commit(
    url: str, expected: bool, tmp_path: Path
) -> None:
    handle = StorageHandle(StorageOptions(url.format(tmp=tmp_path)))
    assert handle.group_commits is expected
    handle.get()
    assert (handle._commit is not None) is expected
    handle.commit()  # nothing written yet: a no-op either way


def test_a_sqlite_group_commit_syncs_the_wal_of_a_database_kept_in_wal_mode(
    tmp_path: Path,
) -> None:
    """The WAL mode stays with the file: plain SQLite opening it afterwards finds WAL."""
    import sqlite3

    import optuna

    handle = StorageHandle(StorageOptions(f"sqlite:///{tmp_path}/a.db"))
    optuna.create_study(storage=handle.get(), study_name="s").ask()
    handle.commit()
    assert (tmp_path / "a.db-wal").exists()
    with sqlite3.connect(tmp_path / "a.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
