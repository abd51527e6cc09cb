"""export / import: deterministic, checksummed snapshots that rebuild a study in any storage."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import optuna
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.studies.snapshot import checksum

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    "layers": {"type": "int", "low": 1, "high": 4},
    "opt": {"type": "categorical", "choices": ["adam", "sgd", None, 3]},
}


def export_bytes(worker: Worker, study: str) -> bytes:
    """The snapshot exactly as it is on the wire (the reply's bytes, not a re-encoding)."""
    worker.send("export", {"study": study})
    payload = worker.read_payload()
    start = payload.index(b'"snapshot":') + len(b'"snapshot":')
    return payload[start : payload.rindex(b"}}")]


def populate(worker: Worker, study: str = "s") -> None:
    worker.create(
        study,
        direction="maximize",
        search_space=SPACE,
        sampler={"type": "tpe", "seed": 4, "n_startup_trials": 3},
        pruner={"type": "median"},
        user_attrs={"owner": "me", "tags": ["a", "b"]},
    )
    for i, trial in enumerate(worker.ask(study, n=8)):
        if i == 7:
            continue
        for step in range(i % 3 + (10 if i == 0 else 0)):  # steps 0..11: "10" sorts before "2"
            worker.call(
                "report",
                {"study": study, "number": trial.number, "step": step, "value": 1.0 / (step + 1)},
            )
        if i % 4 == 3:
            worker.tell(study, trial.number, state="fail")
        elif i % 4 == 2:
            worker.tell(study, trial.number, state="pruned")
        else:
            worker.tell(study, trial.number, value=0.1 * i + 1e-17, user_attrs={"i": i})
    # trial 7 stays running; a fixed-params trial carries Optuna's own system attrs
    (fixed,) = worker.ask(study, fixed_params={"layers": 2})
    worker.tell(study, fixed.number, value=1e300)


@pytest.fixture
def source() -> Iterator[Worker]:
    with Worker.spawn() as worker:
        populate(worker)
        yield worker


@pytest.fixture(scope="module")
def unchanged_source() -> Iterator[Worker]:
    """One populated worker for the tests whose imports are all refused: each checks that its
    refusal changed nothing, so the next one starts from the same study."""
    with Worker.spawn() as worker:
        populate(worker)
        yield worker


def test_export_is_deterministic_and_round_trips_byte_identically(source: Worker) -> None:
    first = export_bytes(source, "s")
    assert export_bytes(source, "s") == first
    document = msgspec.json.decode(first)
    assert (document["format"], document["version"]) == ("optuna-bridge.snapshot", 1)
    assert document["checksum"] == checksum(document["body"])
    assert first == msgspec.json.encode(document, order="sorted")  # canonical: sorted keys
    body = document["body"]
    assert [t["state"] for t in body["trials"]] == [
        "complete",
        "complete",
        "pruned",
        "fail",
        "complete",
        "complete",
        "pruned",
        "running",
        "complete",
    ]
    sampler = body["config"]["sampler"]  # resolved: every default filled in
    assert {k: sampler[k] for k in ("type", "seed", "n_startup_trials")} == {
        "type": "tpe",
        "seed": 4,
        "n_startup_trials": 3,
    }
    assert body["config"]["optuna_version"] == optuna.__version__
    assert body["user_attrs"] == {"owner": "me", "tags": ["a", "b"]}

    with Worker.spawn() as fresh:
        assert fresh.import_(document).n_trials == 9
        assert export_bytes(fresh, "s") == first
        # the rebuilt study goes on: the running trial can be told, new trials asked
        assert fresh.tell("s", 7, value=9.0).state == "complete"
        assert fresh.ask("s")[0].number == 9
        assert fresh.best("s")[0].values == [1e300]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_import_into_durable_storages(
    kind: str, source: Worker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/i.db"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    snapshot = export_bytes(source, "s")
    with Worker.spawn(url) as durable:
        durable.import_(msgspec.json.decode(snapshot))
        assert export_bytes(durable, "s") == snapshot
    with Worker.spawn(url) as restarted:  # and it is really in the storage
        assert export_bytes(restarted, "s") == snapshot
        assert restarted.trials("s") == source.trials("s")


def test_import_under_another_name_and_overwrite(source: Worker) -> None:
    snapshot = source.export("s")
    result = source.import_(snapshot, study="copy")
    assert (result.study, result.n_trials) == ("copy", 9)
    assert source.trials("copy") == source.trials("s")

    with pytest.raises(WorkerError) as caught:
        source.import_(snapshot)
    assert caught.value.kind == "study_exists"

    source.tell("s", 7, value=5.0)
    assert source.import_(snapshot, overwrite=True).n_trials == 9
    assert source.trials("s", states=["running"])[0].number == 7  # back to the snapshot


def _edit(snapshot: dict[str, Any], change: Any, rehash: bool) -> dict[str, Any]:
    edited = copy.deepcopy(snapshot)
    change(edited)
    if rehash:
        edited["checksum"] = checksum(edited["body"])
    return edited


def _set_value(s: dict[str, Any]) -> None:
    s["body"]["trials"][0]["values"] = [123.0]


def _set_version(s: dict[str, Any]) -> None:
    s["version"] = 2


def _drop_version(s: dict[str, Any]) -> None:
    del s["version"]


def _unknown_field(s: dict[str, Any]) -> None:
    s["body"]["trials"][0]["pickle"] = "gASVAAAA"


def _param_outside(s: dict[str, Any]) -> None:
    s["body"]["trials"][0]["params"]["layers"] = 99


def _renumber(s: dict[str, Any]) -> None:
    s["body"]["trials"][1]["number"] = 5


def _bad_state(s: dict[str, Any]) -> None:
    s["body"]["trials"][0]["state"] = "exploded"


def _complete_without_value(s: dict[str, Any]) -> None:
    s["body"]["trials"][0]["values"] = None


def _wrong_format(s: dict[str, Any]) -> None:
    s["format"] = "pickle"


@pytest.mark.parametrize(
    ("change", "rehash", "reason"),
    [
        (_set_value, False, "corrupt"),
        (_set_version, False, "version_mismatch"),
        (_drop_version, False, "version_mismatch"),
        (_wrong_format, False, "bad_shape"),
        (_unknown_field, True, "bad_shape"),
        (_param_outside, True, "bad_shape"),
        (_renumber, True, "bad_shape"),
        (_bad_state, True, "bad_shape"),
        (_complete_without_value, True, "bad_shape"),
    ],
)
def test_bad_snapshots_are_rejected_and_change_nothing(
    unchanged_source: Worker, change: Any, rehash: bool, reason: str
) -> None:
    source = unchanged_source
    before = export_bytes(source, "s")
    edited = _edit(source.export("s"), change, rehash)
    with pytest.raises(WorkerError) as caught:
        source.import_(edited, overwrite=True)
    assert caught.value.code == -32008
    assert caught.value.kind == "snapshot_invalid"
    assert caught.value.data["reason"] == reason
    assert export_bytes(source, "s") == before
    assert [s.study for s in source.list_studies()] == ["s"]


@pytest.mark.parametrize("snapshot", [None, [], "snapshot", 42, {}])
def test_snapshot_that_is_not_a_document(unchanged_source: Worker, snapshot: Any) -> None:
    before = export_bytes(unchanged_source, "s")
    with pytest.raises(WorkerError) as caught:
        unchanged_source.call("import", {"snapshot": snapshot})
    assert caught.value.data["reason"] in ("bad_shape", "version_mismatch")
    assert export_bytes(unchanged_source, "s") == before


# ---- snapshots signed with the operator's key (issue 29) -----------------------------------


def test_a_worker_with_a_key_signs_exports_and_refuses_unsigned_or_forged_imports(
    tmp_path: Path,
) -> None:
    key, other_key = tmp_path / "key", tmp_path / "other"
    key.write_text("k" * 32 + "\n")
    other_key.write_text("o" * 32)
    with (
        Worker.spawn(args=["--snapshot-key", str(key)]) as signer,
        Worker.spawn(args=["--snapshot-key", str(other_key)]) as stranger,
        Worker.spawn() as keyless,
    ):
        for worker in (signer, stranger, keyless):
            populate(worker)
        signed = signer.export("s")
        assert signed["signature"].startswith("hmac-sha256:")
        assert signer.import_(signed, study="copy").n_trials == 9
        assert keyless.import_(signed, study="copy").n_trials == 9  # no key: not checked

        unsigned = keyless.export("s")
        assert "signature" not in unsigned
        tampered = copy.deepcopy(signed)
        tampered["body"]["config"]["sampler"]["n_startup_trials"] = 0
        tampered["checksum"] = checksum(tampered["body"])  # anyone can recompute a checksum
        for snapshot, reason in [
            (unsigned, "unsigned"),
            (tampered, "bad_signature"),
            (stranger.export("s"), "bad_signature"),
        ]:
            with pytest.raises(WorkerError) as caught:
                signer.import_(snapshot, study="forged")
            assert caught.value.kind == "snapshot_invalid"
            assert caught.value.data["reason"] == reason
            assert "--snapshot-key" in caught.value.message
        assert "forged" not in [s.study for s in signer.list_studies()]


@pytest.mark.parametrize("content", ["short", "two words in a key file"])
def test_an_unusable_snapshot_key_is_refused_at_start(tmp_path: Path, content: str) -> None:
    key = tmp_path / "key"
    key.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "bridge_worker", "--snapshot-key", str(key)],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert b"snapshot key" in done.stderr
