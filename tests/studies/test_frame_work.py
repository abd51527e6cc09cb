"""Per-frame work only where it is needed (issue 24 item 3). Not timed: these count the storage
work an ask/tell does, which a busy machine cannot blur."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import orjson
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution

from bridge_worker.studies import stopping
from bridge_worker.wire.rpc import Endpoint
from tests.helpers import make_endpoint

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
WRITES = ("set_trial_user_attr", "set_trial_system_attr")


def _call(endpoint: Endpoint, method: str, params: dict[str, Any]) -> Any:
    (out,) = endpoint.handle(orjson.dumps({"id": 1, "method": method, "params": params}))
    reply = orjson.loads(out)
    assert "result" in reply, reply
    return reply["result"]


def _count_writes(endpoint: Endpoint) -> Counter[str]:
    """Count the storage's attr writes from now on."""
    storage = endpoint.dispatcher.registry.storage
    counts: Counter[str] = Counter()
    for name in WRITES:
        real = getattr(storage, name)

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            counts[_name] += 1
            return _real(*args)

        setattr(storage, name, counted)
    return counts


def _ask_and_tell(endpoint: Endpoint, trials: int) -> list[Any]:
    told = []
    for _ in range(trials):
        (trial,) = _call(endpoint, "ask", {"study": "s"})["trials"]
        told.append(
            _call(
                endpoint,
                "tell",
                {"study": "s", "number": trial["number"], "value": trial["params"]["x"]},
            )
        )
    return told


def test_asks_and_tells_of_a_study_without_stop_rules_evaluate_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ask and tell asks whether the study is stopped: for a study without rules that is
    one attribute test, not its directions converted and its rules evaluated (2 per trial
    before); a tell without user attrs or constraints writes none."""
    evaluated = Counter[str]()
    real = stopping.stopped_study

    def counted(*args: Any) -> Any:
        evaluated["stopped_study"] += 1
        return real(*args)

    monkeypatch.setattr(stopping, "stopped_study", counted)
    endpoint = make_endpoint()
    endpoint.dispatcher.registry.open()
    _call(
        endpoint, "create", {"study": "s", "search_space": SPACE, "sampler": {"type": "random"}}
    )  # TPE writes attrs of its own
    writes = _count_writes(endpoint)
    _ask_and_tell(endpoint, 20)
    assert evaluated["stopped_study"] == 0
    assert writes == Counter()


def test_a_study_with_stop_rules_still_evaluates_them() -> None:
    """The cheaper check keeps its meaning: a rule that holds stops the study."""
    endpoint = make_endpoint()
    endpoint.dispatcher.registry.open()
    _call(endpoint, "create", {"study": "s", "search_space": SPACE, "stop": {"max_trials": 2}})
    told = _ask_and_tell(endpoint, 2)
    assert "stopped" not in told[0]
    assert told[1]["stopped"]["rule"] == "max_trials"


def _count_statements(engine: Any) -> Counter[str]:
    """Count the SQL statements run on ``engine`` from now on, by their first word."""
    import sqlalchemy

    counts: Counter[str] = Counter()

    def counted(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts[statement.split()[0].upper()] += 1

    sqlalchemy.event.listen(engine, "before_cursor_execute", counted)
    return counts


def test_a_trial_on_sqlite_costs_no_more_sql_than_in_process_optuna(tmp_path: Path) -> None:
    """On an RDB storage a trial is SQLAlchemy's CPU (~20k Python calls on SQLite), not its
    ``fsync``: the worker must not add reads to Optuna's. A tell without attrs reads its trial
    once (Optuna's tell reads it; a read of the worker's own before it doubled that), the
    study's identity is one plain query per frame, and an ask looks for enqueued trials with one
    indexed query. 39 statements per trial in-process, 42 in the worker before, 30 now."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/optuna.db", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    space: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}  # SPACE
    in_process = _count_statements(study._storage._backend.engine)  # type: ignore[attr-defined]
    for _ in range(5):
        trial = study.ask(space)
        study.tell(trial, 1.0)
    endpoint = make_endpoint(f"sqlite:///{tmp_path}/worker.db")
    endpoint.dispatcher.registry.open()
    _call(endpoint, "create", {"study": "s", "search_space": SPACE, "sampler": {"type": "random"}})
    worker = _count_statements(endpoint.dispatcher.registry.storage.engine)
    _ask_and_tell(endpoint, 5)
    assert worker.total() <= in_process.total(), (worker, in_process)
    assert worker["SELECT"] <= in_process["SELECT"], (worker, in_process)


def test_an_ask_on_sqlite_still_takes_a_trial_another_process_enqueued_first(
    tmp_path: Path,
) -> None:
    """The ask skips Optuna's look for enqueued trials only when one indexed query says there
    are none; a trial enqueued by plain Optuna (another process, here another storage object)
    is still served first."""
    url = f"sqlite:///{tmp_path}/q.db"
    endpoint = make_endpoint(url)
    endpoint.dispatcher.registry.open()
    _call(endpoint, "create", {"study": "s", "search_space": SPACE, "sampler": {"type": "random"}})
    _ask_and_tell(endpoint, 2)
    optuna.load_study(study_name="s", storage=url).enqueue_trial({"x": 0.25})
    (trial,) = _call(endpoint, "ask", {"study": "s"})["trials"]
    assert trial == {"number": 2, "params": {"x": 0.25}}
    (trial,) = _call(endpoint, "ask", {"study": "s"})["trials"]
    assert trial["number"] == 3
