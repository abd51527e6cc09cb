"""Readers during an import with overwrite see the old or the new study, never a gap (issue 29,
item 3). On journal storages the swap is a delete and a copy: the importer is held right after
its delete while another worker reads the study.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import msgspec
import pytest
from msgspec import UNSET

from bridge_worker.client import Worker
from tests.races import racing_worker, storage_for, wait_until

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


@pytest.mark.parametrize("kind", ["journal", "redis"])
def test_a_reader_during_an_import_swap_sees_the_new_study_not_a_gap(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    url = storage_for(kind, tmp_path, lambda: "", lambda: str(request.getfixturevalue("redis_url")))
    study = f"s-{uuid.uuid4().hex[:8]}"
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "delete_waits") as importer, Worker.spawn(url) as reader:
        importer.create(study, search_space=SPACE)
        (trial,) = importer.ask(study)
        importer.tell(study, trial.number, value=1.0)
        snapshot = importer.export(study)
        importer.add_trials(study, [{"params": {"x": 0.5}, "value": 2.0}])
        assert len(reader.trials(study)) == 2  # the old study, as the reader caches it
        importer.send("import", {"study": study, "snapshot": snapshot, "overwrite": True})
        wait_until((meet / "delete-paused").exists, "the swap to delete the old study")
        started = time.monotonic()
        reader.ping()
        round_trip = time.monotonic() - started
        sent = reader.send("trials", {"study": study})
        time.sleep(min(1.0, max(0.3, 50 * round_trip)))  # the reader meets the gap
        (meet / "go").touch()
        assert importer.receive().error is UNSET
        reply = reader.receive()
        assert reply.id == sent
        assert reply.error is UNSET, reply.error
        assert [t["values"] for t in msgspec.json.decode(reply.result)["trials"]] == [[1.0]]


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_a_reader_whose_study_is_replaced_mid_request_answers_from_the_new_one(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    url = storage_for(
        kind, tmp_path, lambda: str(request.getfixturevalue("postgres_url")), lambda: ""
    )
    study = f"s-{uuid.uuid4().hex[:8]}"
    meet = tmp_path / "meet"
    with Worker.spawn(url) as importer, racing_worker(url, meet, "read_waits") as reader:
        importer.create(study, search_space=SPACE)
        (trial,) = importer.ask(study)
        importer.tell(study, trial.number, value=1.0)
        snapshot = importer.export(study)
        importer.add_trials(study, [{"params": {"x": 0.5}, "value": 2.0}])
        assert len(reader.trials(study)) == 2  # cached by the reader
        (meet / "arm-read").touch()
        sent = reader.send("trials", {"study": study})
        wait_until((meet / "read-paused").exists, "the reader to be past its identity check")
        importer.import_(snapshot, study=study, overwrite=True)
        (meet / "go").touch()
        reply = reader.receive()
        assert reply.id == sent
        assert reply.error is UNSET, reply.error  # before: internal_error (KeyError)
        assert [t["values"] for t in msgspec.json.decode(reply.result)["trials"]] == [[1.0]]
