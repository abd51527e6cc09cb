"""The Python client against a real worker: typed results, errors as exceptions, pipelining."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from bridge_worker.client import Worker, WorkerError, WorkerExited
from bridge_worker.wire.schema import AskedTrial, CreateResult, TellResult
from tests.helpers import ROOT

SPACE = {"x": {"type": "int", "low": -5, "high": 5}}


def test_typed_results(worker: Worker) -> None:
    created = worker.create("c", search_space=SPACE, sampler={"type": "random", "seed": 2})
    assert created == CreateResult(
        study="c", directions=["minimize"], created=True, n_trials=0, n_running=0
    )
    trials = worker.ask("c", n=2)
    assert all(isinstance(t, AskedTrial) for t in trials)
    told = worker.tell("c", trials[0].number, 1.5, user_attrs={"note": "first"})
    assert told == TellResult(number=0, state="complete", values=[1.5])
    assert worker.tell("c", trials[1].number, state="fail").state == "fail"
    (best,) = worker.best("c")
    assert best.user_attrs == {"note": "first"}
    assert [s.study for s in worker.list_studies()] == ["c"]
    assert worker.delete("c").deleted
    assert worker.list_studies() == []


def test_errors_carry_their_kind(worker: Worker) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.ask("nobody")
    assert caught.value.kind == "study_not_found"
    assert caught.value.code == -32001
    worker.create("c")
    with pytest.raises(WorkerError) as caught:
        worker.create("c")
    assert caught.value.kind == "study_exists"
    assert worker.create("c", load_if_exists=True).created is False


def test_fixed_params_and_per_call_search_space(worker: Worker) -> None:
    worker.create("f", search_space=SPACE, sampler={"type": "random", "seed": 0})
    (trial,) = worker.ask("f", fixed_params={"x": 3})
    assert trial.params == {"x": 3}
    (trial,) = worker.ask("f", search_space={"y": {"type": "categorical", "choices": [True]}})
    assert set(trial.params) == {"x", "y"}
    with pytest.raises(WorkerError) as caught:
        worker.ask("f", fixed_params={"x": 99})
    assert caught.value.data["field"] == "$.params.fixed_params.x"
    with pytest.raises(WorkerError) as caught:
        worker.ask("f", fixed_params={"z": 1})
    assert caught.value.kind == "invalid_params"


def test_batch_and_failed_notifications(worker: Worker) -> None:
    replies = worker.batch([("ping", None), ("ask", {"study": "missing"})])
    assert [r.id for r in replies] == [1, 2]
    assert replies[1].error is not None
    worker.send("tell", {"study": "missing", "number": 0, "value": 1.0}, notify=True)
    assert worker.ping()
    (note,) = worker.notifications
    assert note.method == "error"


def test_killed_worker_raises_worker_exited() -> None:
    with Worker.spawn() as w:
        os.kill(w.pid, signal.SIGKILL)
        w.proc.wait()
        with pytest.raises(WorkerExited) as caught:
            w.ping()
    assert w.proc.returncode == -signal.SIGKILL
    assert caught.value.status == -signal.SIGKILL


def test_numpy_scalars_and_arrays_are_accepted_wherever_the_client_encodes(
    worker: Worker,
) -> None:
    space = {"x": {"type": "float", "low": 0, "high": 1}, "k": {"type": "int", "low": 0, "high": 5}}
    worker.create("np", search_space=space, directions=["minimize", "maximize"])
    (trial,) = worker.ask(
        "np", n=np.int64(1), fixed_params={"k": np.int64(2), "x": np.float32(0.5)}
    )
    assert trial.params == {"x": 0.5, "k": 2}
    told = worker.tell(
        "np",
        np.int32(trial.number),
        values=np.array([0.25, 1.0]),
        user_attrs={"loss": np.float64(0.25), "ok": np.bool_(True)},
    )
    assert told.values == [0.25, 1.0]
    worker.create("np1", search_space=space)
    (trial,) = worker.ask("np1")
    assert worker.tell("np1", trial.number, np.float64(0.5)).values == [0.5]
    (trial,) = worker.ask("np1")
    assert worker.tell("np1", trial.number, np.float32(0.5), constraints=np.array([-1.0])).values
    with pytest.raises(TypeError):
        worker.tell("np1", 0, values=np.zeros((2, 2)))


def test_a_worker_that_refuses_to_start_raises_its_status_and_stderr() -> None:
    with pytest.raises(WorkerExited) as caught:
        Worker.spawn(args=["--max-ask", "5000"])
    assert caught.value.status == 2
    assert any(
        "cannot exceed the protocol's bound 1000" in line for line in caught.value.stderr_lines
    )
    assert "status 2" in str(caught.value) and "--max-ask" in str(caught.value)
    with pytest.raises(WorkerExited) as caught:
        Worker.spawn(storage="bogus://x")
    assert caught.value.status == 2 and "unknown storage scheme" in str(caught.value)


def test_calls_after_shutdown_raise_worker_exited() -> None:
    with Worker.spawn() as w:
        assert w.shutdown() == 0
        with pytest.raises(WorkerExited) as caught:
            w.ping()
        assert caught.value.status == 0
    with pytest.raises(WorkerExited):
        w.ping()  # after close() too


HELPER_NAMES = {
    "list": "list_studies",
    "import": "import_",
    "artifact_put": "put_artifact",
    "artifact_get": "get_artifact",
}
PARAM_NAMES = {"copy_trials.from": "from_study", "copy_trials.to": "to_study"}
HANDLED_BY_THE_HELPER = {
    "artifact_put.offset",
    "artifact_put.final",
    "artifact_put.sha256",
    "artifact_get.offset",
    "artifact_get.limit",
}
"""Chunking fields: the helpers upload and download whole files, chunk by chunk."""


def test_every_method_and_param_of_the_schema_has_a_typed_helper() -> None:
    """Walks protocol/schema: each method needs a Worker helper taking each of its params."""
    document = json.loads((ROOT / "protocol" / "schema" / "optuna-bridge.schema.json").read_text())
    missing = []
    for method, shapes in sorted(document["methods"].items()):
        helper = getattr(Worker, HELPER_NAMES.get(method, method), None)
        if helper is None:
            missing.append(method)
            continue
        accepted = set(inspect.signature(helper).parameters)
        definition = document["$defs"][shapes["params"]["$ref"].rsplit("/", 1)[1]]
        missing += [
            f"{method}.{field}"
            for field in definition.get("properties", {})
            if PARAM_NAMES.get(f"{method}.{field}", field) not in accepted
            and f"{method}.{field}" not in HANDLED_BY_THE_HELPER
        ]
    assert missing == []


def test_typed_helpers_cover_the_readme_features(worker: Worker) -> None:
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    worker.create(
        "h",
        search_space=space,
        sampler={"type": "random", "seed": 1},
        pruner={"type": "median"},
        user_attrs={"team": "a"},
    )
    assert worker.enqueue("h", {"x": 0.5}, user_attrs={"why": "guess"}) is True
    assert worker.enqueue("h", {"x": 0.5}, skip_if_exists=True) is False
    (first,) = worker.ask("h")
    assert first.params == {"x": 0.5}
    assert worker.report("h", first.number, 0, 0.3) is False
    worker.set_attrs("h", {"note": "n"}, number=first.number)
    worker.set_attrs("h", {"study_note": "s"})
    worker.tell("h", first.number, 0.3, constraints=[-1.0])
    (second,) = worker.ask("h")
    worker.tell("h", second.number, 0.1, constraints=[-0.5])
    (best,) = worker.best("h", datetimes=True)
    assert best.datetime_start is not None and str(best.datetime_start).endswith("Z")
    assert set(worker.importance("h", params=["x"])) == {"x"}
    assert [t.number for t in worker.trials("h", ["complete"], datetimes=True)] == [0, 1]


def test_the_client_imports_no_optuna() -> None:
    """A parent that only drives a worker pays for msgspec, not for Optuna or numpy."""
    probe = (
        "import sys; import bridge_worker.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'numpy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("framing", ["line", "packet4"])
def test_read_payload_is_the_frame_without_its_framing(framing: str) -> None:
    with Worker.spawn(framing=framing) as w:
        w.write_frame(b'{"id":7,"method":"ping"}')
        payload = w.read_payload()
        assert payload == b'{"jsonrpc":"2.0","id":7,"result":{"pong":true}}'
