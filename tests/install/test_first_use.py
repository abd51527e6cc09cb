"""What a new user meets first: answers that say what to do next (issue 23's "Wrong" and "Rough").

Each test names the behaviour; the figures' are in ``tests/studies/test_figure_bounds.py`` and
``tests/studies/test_figure_layout.py``, README's examples in ``test_readme.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wiring import build_endpoint
from tests.helpers import PYTHON, ROOT

SPACE = {"x": {"type": "float", "low": 0, "high": 10}, "n": {"type": "int", "low": 0, "high": 10}}


def _reply(endpoint: Endpoint, method: str, params: dict[str, Any]) -> Any:
    (out,) = endpoint.handle(
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    )
    return orjson.loads(out)


def _raw_reply(endpoint: Endpoint, method: str, params: dict[str, Any]) -> bytes:
    (out,) = endpoint.handle(
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    )
    return out


def test_add_trials_stores_a_whole_number_of_a_float_parameter_as_a_float() -> None:
    endpoint = build_endpoint()
    _reply(endpoint, "create", {"study": "s", "search_space": SPACE})
    added = _reply(
        endpoint,
        "add_trials",
        {"study": "s", "trials": [{"params": {"x": 3, "n": 4}, "value": 1.0}]},
    )
    assert added["result"]["numbers"] == [0]
    raw = _raw_reply(endpoint, "trials", {"study": "s"})
    assert b'"params":{"x":3.0,"n":4}' in raw, raw
    best = _raw_reply(endpoint, "best", {"study": "s"})
    assert b'"x":3.0' in best


def test_every_count_bound_is_limit_exceeded_naming_it() -> None:
    """``ask`` ``n`` over 1000 and ``add_trials`` of over 1000 trials: the same kind of answer."""
    endpoint = build_endpoint()
    _reply(endpoint, "create", {"study": "s", "search_space": SPACE})
    asked = _reply(endpoint, "ask", {"study": "s", "n": 1001})
    trials = [{"params": {"x": 1.0}, "value": 1.0}] * 1001
    added = _reply(endpoint, "add_trials", {"study": "s", "trials": trials})
    for answer, limit in ((asked, "max_ask"), (added, "max_add_trials")):
        assert answer["error"]["data"]["kind"] == "limit_exceeded", answer
        assert answer["error"]["data"]["limit"] == limit
        assert answer["error"]["data"]["max"] == 1000
        assert answer["error"]["data"]["value"] == 1001
    assert _reply(endpoint, "trials", {"study": "s"})["result"]["trials"] == []


def test_an_operator_may_lower_the_add_trials_bound() -> None:
    with Worker.spawn(args=["--max-add-trials", "2"]) as worker:
        worker.create("s", search_space=SPACE)
        with pytest.raises(WorkerError) as caught:
            worker.add_trials("s", [{"params": {"x": 1.0}, "value": 1.0}] * 3)
        assert caught.value.kind == "limit_exceeded"
        assert caught.value.data["limit"] == "max_add_trials"


def test_duplicate_metric_names_are_refused() -> None:
    endpoint = build_endpoint()
    answer = _reply(
        endpoint,
        "create",
        {"study": "s", "directions": ["minimize", "minimize"], "metric_names": ["loss", "loss"]},
    )
    assert answer["error"]["data"]["kind"] == "invalid_params"
    assert answer["error"]["data"]["field"] == "$.params.metric_names[1]"
    assert "objective 0" in answer["error"]["message"]
    assert _reply(endpoint, "list", {})["result"]["studies"] == []


def test_tell_and_renew_of_a_trial_whose_lease_ended_say_so() -> None:
    with Worker.spawn() as worker:
        worker.create("s", search_space=SPACE)
        (trial,) = worker.ask("s", lease_s=0.2)
        deadline = time.monotonic() + 60
        while worker.trials("s")[0].state != "fail":
            assert time.monotonic() < deadline, "the lease never ended"
            time.sleep(0.05)
        for call in (
            lambda: worker.tell("s", trial.number, 1.0),
            lambda: worker.renew("s", trial.number),
        ):
            with pytest.raises(WorkerError) as caught:
                call()
            assert caught.value.kind == "trial_finished"
            assert caught.value.data["state"] == "fail"
            assert "is already failed (its lease ended at 20" in str(caught.value)
        (told,) = worker.ask("s")
        worker.tell("s", told.number, 1.0)
        with pytest.raises(WorkerError) as finished:
            worker.tell("s", told.number, 1.0)
        assert "is already complete" in str(finished.value)
        assert "lease" not in str(finished.value)


def _start(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PYTHON, "-m", "bridge_worker", *args], input=b"", capture_output=True, timeout=60
    )


def test_help_names_the_proxy_subcommand() -> None:
    done = _start("--help")
    assert done.returncode == 0
    assert b"optuna-bridge proxy --storage URL" in done.stdout


@pytest.mark.parametrize("url", ["sqlite:///{dir}/missing/x.db", "journal:///{dir}/missing/x.log"])
def test_a_storage_file_in_a_missing_directory_exits_2_before_ready(
    tmp_path: Path, url: str
) -> None:
    done = _start("--storage", url.format(dir=tmp_path))
    assert done.returncode == 2
    assert done.stdout == b""  # no ready frame
    assert f"{tmp_path}/missing".encode() in done.stderr
    assert b"does not exist" in done.stderr


def test_postgresql_without_a_driver_says_which_url_to_use() -> None:
    code = (
        "import sys; sys.modules['psycopg2'] = None\n"
        "from bridge_worker.__main__ import main\n"
        "sys.exit(main(['--storage', 'postgresql://u@localhost/db']))\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, timeout=60, input=b"")
    assert done.returncode == 2
    assert b"postgresql+psycopg2://" in done.stderr
    assert b"optuna-bridge[postgres]" in done.stderr
    assert b"psycopg" in done.stderr


def test_the_command_line_imports_nothing_heavy_for_these_checks() -> None:
    """The start-up checks above stay in the light command-line path (no Optuna import)."""
    code = (
        "import sys\nfrom bridge_worker.config import parse_args\n"
        "parse_args(['--storage', 'journal:///tmp/x.log'])\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_make_dashboard_opens_every_storage_url_the_worker_accepts(
    tmp_path: Path, kind: str
) -> None:
    url = f"sqlite:///{tmp_path}/d.db" if kind == "sqlite" else f"journal:///{tmp_path}/d.log"
    with Worker.spawn(storage=url) as worker:
        worker.create("shown")
    script = ROOT / "scripts" / "dashboard.py"
    done = subprocess.run([PYTHON, str(script), "--check", url], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"1 studies in the {kind} storage".encode() in done.stderr


def test_make_dashboard_of_memory_says_why_not() -> None:
    script = ROOT / "scripts" / "dashboard.py"
    done = subprocess.run(
        [PYTHON, str(script), "--check", "memory"], capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert b"lives inside one worker" in done.stderr
