"""Throw-away storages for the measurement scripts: SQLite and journal files in a temp dir, and
a PostgreSQL server from tests/servers.py when PostgreSQL is installed."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def throwaway_storages(kinds: list[str]) -> Iterator[dict[str, str]]:
    """A fresh URL per kind (``sqlite``, ``journal``, ``postgresql``); PostgreSQL is left out,
    with a note on stderr, when it is not installed."""
    from tests import servers

    with tempfile.TemporaryDirectory() as tmp:
        urls: dict[str, str] = {}
        if "sqlite" in kinds:
            urls["sqlite"] = f"sqlite:///{tmp}/m.db"
        if "journal" in kinds:
            urls["journal"] = f"journal:///{tmp}/m.log"
        server = None
        if "postgresql" in kinds:
            bindir = servers._postgres_bin()
            if bindir is None:
                print("PostgreSQL not installed: skipped", file=sys.stderr)
            else:
                server = servers.PostgresServer(bindir)
                urls["postgresql"] = server.new_database()
        try:
            yield urls
        finally:
            if server is not None:
                server.close()
