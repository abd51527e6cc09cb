"""Trials are addressed by study identity, not only by name (issue 29, item 2): a tell, renew,
report or set_attrs of a trial asked from a study that was deleted (and maybe re-created) is
``study_not_found`` with ``data.replaced: true`` and never lands on the new study's trial with
that number; racing ``create(load_if_exists)`` stores nothing from the losing creator's space.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import msgspec
import pytest
from msgspec import UNSET

from bridge_worker.client import Worker, WorkerError
from tests.races import racing_worker, wait_until

OLD_SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
NEW_SPACE = {"y": {"type": "int", "low": 10, "high": 20}}


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql", "redis"])
def test_a_tell_for_a_trial_of_a_replaced_study_never_lands_on_the_new_one(
    kind: str,
    url_of,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = f"s-{uuid.uuid4().hex[:8]}"
    with Worker.spawn(url) as a, Worker.spawn(url) as b:
        a.create(study, search_space=OLD_SPACE)
        (old,) = a.ask(study, lease_s=60)
        b.delete(study)
        b.create(study, search_space=NEW_SPACE)
        (new,) = b.ask(study)
        assert new.number == old.number
        for method, extra in (
            ("tell", {"value": 1.0}),
            ("renew", {"lease_s": 5}),
            ("report", {"step": 1, "value": 0.5}),
            ("set_attrs", {"user_attrs": {"k": 1}}),
        ):
            with pytest.raises(WorkerError) as caught:
                a.call(method, {"study": study, "number": old.number, **extra})
            assert caught.value.kind == "study_not_found", method
            assert caught.value.data["replaced"] is True
        (stored,) = b.trials(study)
        assert stored.state == "running" and stored.user_attrs == {}
        assert stored.intermediate_values == {}
        b.tell(study, new.number, value=3.0)  # the new study's own trial is told as usual
        assert b.trials(study)[0].values == [3.0]


def test_a_tell_for_a_trial_of_a_deleted_study_says_replaced(worker: Worker) -> None:
    worker.create("s", search_space=OLD_SPACE)
    (old,) = worker.ask("s")
    worker.delete("s")
    with pytest.raises(WorkerError) as caught:
        worker.tell("s", old.number, value=1.0)
    assert caught.value.kind == "study_not_found" and caught.value.data["replaced"] is True
    worker.create("s", search_space=NEW_SPACE)
    with pytest.raises(WorkerError) as caught:
        worker.tell("s", old.number, value=1.0)
    assert caught.value.data["replaced"] is True


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_racing_creates_store_nothing_from_the_losing_space(
    kind: str,
    url_of,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url = url_of(kind)
    study = f"s-{uuid.uuid4().hex[:8]}"
    meet = tmp_path / "meet"
    with racing_worker(url, meet, "create_waits") as a, Worker.spawn(url) as b:
        started = time.monotonic()
        b.ping()
        round_trip = time.monotonic() - started
        a.send("create", {"study": study, "search_space": OLD_SPACE})
        wait_until((meet / "create-paused").exists, "the winner to create the study")
        b.send("create", {"study": study, "search_space": NEW_SPACE, "load_if_exists": True})
        b.send("ask", {"study": study})
        # the loser had ample time to store a trial from its space (before the fix it did)
        time.sleep(min(2.0, max(0.5, 50 * round_trip)))
        (meet / "go").touch()
        assert a.receive().error is UNSET
        created, asked = b.receive(), b.receive()
        assert created.error is UNSET and asked.error is UNSET, (created, asked)
        assert set(msgspec.json.decode(asked.result)["trials"][0]["params"]) == {"x"}
        assert all(set(t.params) == {"x"} for t in a.trials(study))
