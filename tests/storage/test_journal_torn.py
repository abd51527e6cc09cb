"""A torn journal record never blocks the file (issue 29, item 3): a worker killed with -9 in
the middle of a large append leaves half a record; the next append and every later read work.
"""

from __future__ import annotations

import json
from pathlib import Path

from optuna.storages.journal._storage import JournalOperation

from bridge_worker.client import Worker
from bridge_worker.storage.journal_file import RepairingJournalFileBackend
from tests.races import racing_worker, wait_until

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def test_kill_during_a_large_append_blocks_nothing(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'studies.log'}"
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "journal_tears") as a:
        a.create("s", search_space=SPACE)
        (trial,) = a.ask("s")
        a.send(
            "set_attrs",
            {"study": "s", "number": trial.number, "user_attrs": {"big": "x" * (2 * 2**20)}},
        )
        wait_until((meet / "torn").exists, "the worker to tear a record")
        a.proc.kill()
        a.proc.wait()
    assert not (tmp_path / "studies.log").read_bytes().endswith(b"\n")  # torn
    with Worker.spawn(url) as b:
        b.tell("s", trial.number, value=0.25)
        (more,) = b.ask("s")
        b.tell("s", more.number, value=0.5)
    with Worker.spawn(url) as c:
        told = c.trials("s")
        assert [t.values for t in told] == [[0.25], [0.5]]
        assert told[0].user_attrs == {}  # the torn record was never acknowledged


def _record(n: int) -> dict[str, object]:
    return {"op_code": 0, "worker_id": "w", "study_name": f"s{n}", "directions": [1]}


def test_a_line_torn_by_an_older_writer_is_read_as_the_record_it_ends_with(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.log"
    whole = [json.dumps(_record(n)).encode() for n in range(3)]
    path.write_bytes(
        whole[0]
        + b"\n"
        + whole[1][:20]
        + whole[1]
        + b"\n"  # a torn record, then the one appended to it
        + b'{"op_code": 3, "wor\n'  # torn with nothing after it on the line
        + whole[2]
        + b"\n"
    )
    logs = list(RepairingJournalFileBackend(str(path)).read_logs(0))
    assert logs[:2] == [_record(0), _record(1)]
    assert logs[2]["op_code"] == JournalOperation.DISCARD_TRIALS  # replayed as nothing
    assert logs[3] == _record(2)
    again = RepairingJournalFileBackend(str(path))
    assert list(again.read_logs(3)) == [_record(2)]  # every reader numbers them alike
