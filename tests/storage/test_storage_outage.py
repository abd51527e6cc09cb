"""The methods of issue 26 during a database outage: ``storage_error``, nothing half-written, and
everything works again once the database is back."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from bridge_worker.client import Worker, WorkerError
from tests.servers import PostgresServer

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def test_new_methods_answer_storage_error_then_recover(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.new_database()
    with Worker.spawn(url, args=["--artifacts", str(tmp_path)]) as worker:
        worker.create("s", search_space=SPACE, stop={"max_trials": 2})
        worker.create("t", search_space=SPACE)
        (trial,) = worker.ask("s", client="c")
        worker.tell("s", trial.number, 0.5)
        chunk = base64.b64encode(b"abc").decode()
        worker.call("artifact_put", {"study": "s", "name": "a", "data": chunk, "final": False})
        postgres.stop()
        try:
            for method, params in [
                ("set_stop", {"study": "s", "stop": None}),
                ("ask", {"study": "s", "client": "c"}),
                ("copy_trials", {"from": "s", "to": "t"}),
                (
                    "artifact_put",
                    {
                        "study": "s",
                        "name": "a",
                        "data": "",
                        "offset": 3,
                        "sha256": hashlib.sha256(b"abc").hexdigest(),
                    },
                ),
                ("artifacts", {"study": "s"}),
            ]:
                with pytest.raises(WorkerError) as caught:
                    worker.call(method, params)
                assert caught.value.kind == "storage_error", method
        finally:
            postgres.ensure_running()
        # the rules are unchanged, nothing was copied, and the upload can be finished
        assert worker.list_studies()[0].stopped is None
        assert worker.trials("t") == []
        done = worker.call(
            "artifact_put",
            {
                "study": "s",
                "name": "a",
                "data": "",
                "offset": 3,
                "sha256": hashlib.sha256(b"abc").hexdigest(),
            },
        )
        assert done["size"] == 3
        assert [a.name for a in worker.artifacts("s")] == ["a"]
        assert worker.call("copy_trials", {"from": "s", "to": "t"})["copied"] == 1
