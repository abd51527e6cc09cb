"""Artifacts (``--artifacts DIR``): chunked uploads checked by sha256, listing, download, bounds,
and Optuna's own format (optuna-dashboard reads them)."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

from bridge_worker.client import Worker, WorkerError
from bridge_worker.storage.handle import StorageHandle
from bridge_worker.storage.options import StorageOptions
from bridge_worker.studies.artifacts import ARTIFACTS_ATTR_PREFIX

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def _spawn(directory: Path, storage: str = "memory", *extra: str) -> Worker:
    return Worker.spawn(storage=storage, args=["--artifacts", str(directory), *extra])


def _put(worker: Worker, **params: object) -> dict[str, object]:
    result: dict[str, object] = worker.call("artifact_put", {"study": "s", **params})
    return result


def test_without_artifacts_dir_the_methods_are_not_configured(worker: Worker) -> None:
    worker.create("s")
    for method, params in [
        ("artifact_put", {"name": "a", "data": "", "sha256": "0" * 64}),
        ("artifacts", {}),
        ("artifact_get", {"artifact_id": "x"}),
    ]:
        with pytest.raises(WorkerError) as caught:
            worker.call(method, {"study": "s", **params})
        assert caught.value.kind == "not_configured" and caught.value.code == -32013


def test_a_chunked_upload_round_trips_and_optuna_reads_it(storage_url: str, tmp_path: Path) -> None:
    blob = os.urandom(300_000)
    directory = tmp_path / "artifacts"
    with _spawn(directory, storage_url) as worker:
        worker.create("s", search_space=SPACE)
        (trial,) = worker.ask("s")
        stored = worker.put_artifact(
            "s",
            blob,
            "model.bin",
            number=trial.number,
            content_type="application/x-model",
            chunk_size=65_536,
        )
        worker.tell("s", trial.number, 0.5)
        with pytest.raises(WorkerError) as finished:  # as in Optuna: a running trial's only
            worker.put_artifact("s", b"late", "late.txt", number=trial.number)
        assert finished.value.kind == "trial_finished"
        assert stored.size == len(blob) and stored.sha256 == hashlib.sha256(blob).hexdigest()
        study_level = worker.put_artifact("s", b"notes", "notes.txt", content_type="text/plain")
        listed = worker.artifacts("s")
        assert {(a.name, a.number, a.size) for a in listed} == {
            ("model.bin", trial.number, len(blob)),
            ("notes.txt", None, 5),
        }
        assert [a.name for a in worker.artifacts("s", trial.number)] == ["model.bin"]
        assert worker.get_artifact("s", str(stored.artifact_id)) == blob
        out = tmp_path / "copy.bin"
        assert worker.get_artifact("s", str(stored.artifact_id), out) is None
        assert out.read_bytes() == blob
        part = worker.call(
            "artifact_get",
            {"study": "s", "artifact_id": study_level.artifact_id, "offset": 2, "limit": 2},
        )
        assert part == {
            "data": base64.b64encode(b"te").decode(),
            "offset": 2,
            "size": 5,
            "eof": False,
        }
    # Optuna itself (and so optuna-dashboard) sees the same artifacts
    storage = StorageHandle(StorageOptions(storage_url)).get()
    study = optuna.load_study(study_name="s", storage=storage)
    frozen = study.trials[0]
    (meta,) = get_all_artifact_meta(frozen, storage=storage)
    assert (meta.filename, meta.mimetype) == ("model.bin", "application/x-model")
    download_artifact(
        artifact_store=FileSystemArtifactStore(str(directory)),
        artifact_id=meta.artifact_id,
        file_path=str(tmp_path / "o.bin"),
    )
    assert (tmp_path / "o.bin").read_bytes() == blob


def test_our_format_is_optunas(tmp_path: Path) -> None:
    """Pin: what upload_artifact writes and what we write read back the same way."""
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study()
    source = tmp_path / "f.txt"
    source.write_bytes(b"abc")
    theirs = optuna.artifacts.upload_artifact(
        artifact_store=store, file_path=str(source), study_or_trial=study, mimetype="text/plain"
    )
    key = ARTIFACTS_ATTR_PREFIX + theirs
    assert ARTIFACTS_ATTR_PREFIX == optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX
    raw = study._storage.get_study_system_attrs(study._study_id)[key]
    assert set(__import__("json").loads(raw)) == {"artifact_id", "filename", "mimetype", "encoding"}


@pytest.mark.parametrize(
    ("params", "field", "kind"),
    [
        ({"name": "../x", "data": "", "sha256": "0" * 64}, "$.params.name", "invalid_params"),
        ({"name": "a", "data": "!!", "sha256": "0" * 64}, "$.params.data", "invalid_params"),
        ({"name": "a", "data": ""}, "$.params.sha256", "invalid_params"),
        ({"name": "a", "data": "", "sha256": "xyz"}, "$.params.sha256", "invalid_params"),
        (
            {"name": "a", "data": "", "offset": 5, "final": False},
            "$.params.offset",
            "invalid_params",
        ),
        ({"name": "a", "data": "", "sha256": "0" * 64, "number": 9}, None, "trial_not_found"),
    ],
)
def test_bad_uploads_store_nothing(
    tmp_path: Path, params: dict[str, object], field: str | None, kind: str
) -> None:
    with _spawn(tmp_path) as worker:
        worker.create("s")
        with pytest.raises(WorkerError) as caught:
            _put(worker, **params)
        assert caught.value.kind == kind
        if field is not None:
            assert caught.value.data["field"] == field
        assert worker.artifacts("s") == []


def test_a_wrong_sha256_or_a_wrong_offset_stores_nothing(tmp_path: Path) -> None:
    with _spawn(tmp_path) as worker:
        worker.create("s")
        _put(worker, name="a", data=base64.b64encode(b"hello").decode(), final=False)
        with pytest.raises(WorkerError) as offset:
            _put(worker, name="a", data="", offset=3, final=False)
        assert offset.value.data["expected"] == 5
        with pytest.raises(WorkerError) as wrong:
            _put(worker, name="a", data=base64.b64encode(b"!").decode(), offset=5, sha256="0" * 64)
        assert wrong.value.data["reason"] == "sha256_mismatch"
        assert worker.artifacts("s") == []
        assert list((tmp_path / ".optuna-bridge-uploads").iterdir()) == []


def test_an_artifact_over_the_limit_is_refused(tmp_path: Path) -> None:
    with _spawn(tmp_path, "memory", "--max-artifact-bytes", "10") as worker:
        worker.create("s")
        worker.put_artifact("s", b"0123456789", "ok")
        with pytest.raises(WorkerError) as caught:
            worker.put_artifact("s", b"0123456789!", "big", chunk_size=4)
        assert caught.value.kind == "limit_exceeded"
        assert caught.value.data["limit"] == "max_artifact_bytes"
        assert [a.name for a in worker.artifacts("s")] == ["ok"]


def test_an_unfinished_upload_is_discarded_after_the_timeout(tmp_path: Path) -> None:
    with _spawn(tmp_path, "memory", "--artifact-upload-timeout", "0.3") as worker:
        worker.create("s")
        _put(worker, name="a", data=base64.b64encode(b"abc").decode(), final=False)
        time.sleep(0.5)
        with pytest.raises(WorkerError) as caught:
            _put(worker, name="a", data="", offset=3, sha256=hashlib.sha256(b"abc").hexdigest())
        assert caught.value.data["field"] == "$.params.offset"  # the upload is gone
        assert list((tmp_path / ".optuna-bridge-uploads").iterdir()) == []


def test_kill_9_mid_upload_leaves_nothing_listed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    directory = tmp_path / "artifacts"
    with _spawn(directory, url) as worker:
        worker.create("s")
        _put(worker, name="a", data=base64.b64encode(b"partial").decode(), final=False)
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait()
    with _spawn(directory, url) as worker:
        assert worker.artifacts("s") == []
        with pytest.raises(WorkerError):
            _put(worker, name="a", data="", offset=7, sha256="0" * 64)


DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"  # from the lock (dashboard extra)


def test_optuna_dashboard_lists_them(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import urllib.request

    url = f"sqlite:///{tmp_path / 's.db'}"
    with _spawn(tmp_path / "art", url) as worker:
        worker.create("s", search_space=SPACE)
        (trial,) = worker.ask("s")
        stored = worker.put_artifact("s", b"weights", "model.txt", number=trial.number)
        worker.tell("s", trial.number, 0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            str(DASHBOARD),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifact-dir",
            str(tmp_path / "art"),
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/1") as r:
                    study = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        (meta,) = study["trials"][0]["artifacts"]
        assert (meta["artifact_id"], meta["filename"]) == (stored.artifact_id, "model.txt")
        path = f"/artifacts/1/{study['trials'][0]['trial_id']}/{stored.artifact_id}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
            assert r.read() == b"weights"
    finally:
        proc.terminate()
        proc.wait(30)
