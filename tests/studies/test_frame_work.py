"""Per-frame work only where it is needed (issue 24 item 3). Not timed: these count the storage
work an ask/tell does, which a busy machine cannot blur."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

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
