"""A request that fails leaves no trial behind (:mod:`bridge_worker.studies.trial_guard`), and what
a storage cannot hold is ``invalid_params`` naming the bound before anything is written
(:mod:`bridge_worker.wire.storage_bounds`), on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wiring import build_endpoint
from tests.servers import PostgresServer

F = {"type": "float", "low": 0.0, "high": 1.0}
AB = {"type": "categorical", "choices": ["a", "b"]}


class Calls:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.next_id = 0

    def __call__(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        frame = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        reply: dict[str, Any] = json.loads(self.endpoint.handle(json.dumps(frame).encode())[-1])
        return reply

    def ok(self, method: str, **params: Any) -> Any:
        reply = self(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, **params: Any) -> dict[str, Any]:
        reply = self(method, **params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def states(self, study: str) -> list[str]:
        return [t["state"] for t in self.ok("trials", study=study)["trials"]]


@pytest.fixture
def call() -> Iterator[Calls]:
    calls = Calls(build_endpoint("memory"))
    yield calls
    calls.endpoint.dispatcher.registry.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Calls]:
    if request.param == "memory":
        url = "memory"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'guard.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.new_database()
    calls = Calls(build_endpoint(url))
    yield calls
    calls.endpoint.dispatcher.registry.close()


# ---- define-by-run asks that conflict with the study: refused before any trial exists --------


@pytest.mark.parametrize(
    "extra",
    [
        {"n": 1},
        {"n": 3},
        {"lease_s": 30.0},
        {"fixed_params": {"c": "a"}},
    ],
    ids=["one", "n3", "lease", "fixed_params"],
)
@pytest.mark.parametrize(
    "given",
    [
        {"type": "categorical", "choices": ["a", "z"]},
        F,
    ],
    ids=["other-choices", "other-kind"],
)
def test_an_ask_whose_space_conflicts_with_the_study_creates_no_trial(
    call: Calls, given: dict[str, Any], extra: dict[str, Any]
) -> None:
    call.ok("create", study="s", search_space={"c": AB})
    call.ok("ask", study="s")
    if "fixed_params" in extra and given is F:
        extra = {"fixed_params": {"c": 0.5}}
    error = call.error("ask", study="s", search_space={"c": given}, **extra)
    assert error["data"]["kind"] == "invalid_params", error
    assert error["data"]["field"] == "$.params.search_space.c"
    assert error["data"]["conflicting_distribution"] == {
        "type": "categorical",
        "choices": ["a", "b"],
    }
    assert "categorical with choices ['a', 'b']" in error["message"]
    assert call.states("s") == ["running"]  # only the first ask's trial


def test_a_new_name_that_conflicts_with_an_earlier_trial_creates_no_trial(call: Calls) -> None:
    call.ok("create", study="s", search_space={"x": F})
    call.ok("ask", study="s", search_space={"opt": AB})
    error = call.error("ask", study="s", search_space={"opt": F})
    assert error["data"]["kind"] == "invalid_params"
    assert "earlier trials" in error["message"]
    assert call.states("s") == ["running"]


def test_an_enqueued_trial_stays_queued_when_the_ask_is_refused(call: Calls) -> None:
    call.ok("create", study="s", search_space={"x": F})
    call.ok("enqueue", study="s", params={"x": 0.5})
    error = call.error("ask", study="s", search_space={"x": AB})
    assert error["data"]["kind"] == "invalid_params"
    assert call.states("s") == ["waiting"]
    assert call.ok("ask", study="s")["trials"][0]["params"] == {"x": 0.5}


def test_compatible_per_ask_spaces_still_work(call: Calls) -> None:
    call.ok("create", study="s", search_space={"x": F, "c": AB})
    call.ok("ask", study="s", search_space={"x": {"type": "float", "low": 0.2, "high": 0.3}})
    call.ok("ask", study="s", search_space={"new": {"type": "int", "low": 0, "high": 3}})
    call.ok("ask", study="s", search_space={"new": {"type": "int", "low": 0, "high": 9}})
    assert call.states("s") == ["running"] * 3


# ---- samplers that cannot fill a trial: refused at create, enqueue or ask ---------------------


def test_a_grid_without_a_parameter_is_refused_at_create(call: Calls) -> None:
    error = call.error(
        "create",
        study="g",
        search_space={"x": F, "y": F},
        sampler={"type": "grid", "search_space": {"x": [0.1, 0.2]}},
    )
    assert error["data"] == {"kind": "invalid_params", "field": "$.params.sampler.search_space"}
    assert "'y'" in error["message"]


def test_grid_enqueue_and_ask_outside_the_grid_create_no_trial(call: Calls) -> None:
    call.ok(
        "create",
        study="g",
        search_space={"x": F, "y": F},
        sampler={"type": "grid", "search_space": {"x": [0.1, 0.2], "y": [0.3]}},
    )
    error = call.error("enqueue", study="g", params={"x": 0.5})
    assert error["data"]["field"] == "$.params.params" and "'y'" in error["message"]
    error = call.error("ask", study="g", search_space={"z": F})
    assert error["data"]["field"] == "$.params.search_space.z"
    assert call.states("g") == []
    call.ok("enqueue", study="g", params={"x": 0.5, "y": 0.5})
    assert call.ok("ask", study="g")["trials"][0]["params"] == {"x": 0.5, "y": 0.5}


@pytest.mark.parametrize(
    ("x0", "field"),
    [
        ({"x": "s", "y": 0.5}, "$.params.sampler.x0.x"),
        ({"x": 0.2, "y": 0.5, "q": 0.5}, "$.params.sampler.x0.q"),
        ({"x": 7.0, "y": 0.5}, "$.params.sampler.x0.x"),
        ({"x": 0.2}, "$.params.sampler.x0"),
    ],
    ids=["string", "unknown-name", "outside", "missing"],
)
def test_a_cmaes_x0_that_is_not_a_point_of_the_space_is_refused_at_create(
    call: Calls, x0: dict[str, Any], field: str
) -> None:
    pytest.importorskip("cmaes")
    error = call.error(
        "create", study="c", search_space={"x": F, "y": F}, sampler={"type": "cmaes", "x0": x0}
    )
    assert error["data"] == {"kind": "invalid_params", "field": field}, error


# ---- the one place that cleans up after anything unforeseen ----------------------------------


def test_a_sampler_failing_after_creation_leaves_no_running_trial(call: Calls) -> None:
    call.ok("create", study="s", search_space={"x": F})
    call.ok("enqueue", study="s", params={"x": 0.5})
    registry = call.endpoint.dispatcher.registry
    sampler = registry.get("s").study.sampler

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a sampler's own fault")

    sampler.sample_independent = broken  # type: ignore[method-assign]
    error = call.error("ask", study="s", n=3)  # the enqueued trial has x: it is sampled fine
    assert error["data"]["kind"] == "internal_error"
    trials = call.ok("trials", study="s")["trials"]
    assert [t["state"] for t in trials] == ["fail", "fail"], trials
    assert trials[1]["params"] == {}
    stored = registry.get("s").study.trials
    assert "a sampler's own fault" in stored[1].system_attrs["bridge:abandoned"]


def test_a_queued_trial_that_got_no_parameter_goes_back_to_the_queue(call: Calls) -> None:
    call.ok("create", study="s", search_space={"x": F, "y": F})
    call.ok("enqueue", study="s", params={"x": 0.5})
    sampler = call.endpoint.dispatcher.registry.get("s").study.sampler

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no")

    sampler.before_trial = broken  # type: ignore[method-assign]
    assert call.error("ask", study="s")["data"]["kind"] == "internal_error"
    assert call.states("s") == ["waiting"]


# ---- what a storage cannot hold: invalid_params naming the bound, nothing written ------------


def test_storage_bounds_are_invalid_params_before_any_write(stored: Calls) -> None:
    call = stored
    call.ok("create", study="s", search_space={"x": F})
    call.ok("ask", study="s")
    long_key = {"k" * 600: 1}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("tell", {"number": 0, "value": 1.0, "user_attrs": long_key}, "at most 512"),
        ("tell", {"number": 0, "value": 1.0, "user_attrs": {"a\x00b": 1}}, "NUL"),
        ("set_attrs", {"user_attrs": long_key}, "at most 512"),
        ("enqueue", {"params": {"x": 0.5}, "user_attrs": long_key}, "at most 512"),
        (
            "add_trials",
            {"trials": [{"params": {"x": 0.5}, "value": 1.0, "user_attrs": long_key}]},
            "at most 512",
        ),
        (
            "add_trials",
            {
                "trials": [
                    {"params": {"x": 0.5}, "value": 1.0, "intermediate_values": {str(2**63): 1.0}}
                ]
            },
            "step",
        ),
        ("report", {"number": 0, "step": 2**63, "value": 1.0}, "step"),
    ]
    for method, params, bound in cases:
        error = call.error(method, study="s", **params)
        assert error["data"]["kind"] == "invalid_params", (method, error)
        assert bound in error["message"], (method, error)
    for name in ["n\x00ul", "s"]:
        error = call.error("create", study=name, search_space={"x\x00": F})
        assert error["data"]["kind"] == "invalid_params" and "NUL" in error["message"], error
    assert call.error("ask", study="n\x00ul")["data"]["kind"] == "study_not_found"
    error = call.error("tell", study="s", number=2**63, value=1.0)
    assert error["data"]["kind"] == "trial_not_found"
    assert call.states("s") == ["running"]  # nothing added, nothing finished


def test_steps_over_32_bits_are_refused_on_sql_storages_only(stored: Calls) -> None:
    call = stored
    call.ok("create", study="s", search_space={"x": F})
    call.ok("ask", study="s")
    sql = call.endpoint.dispatcher.registry.max_step < 2**40
    reply = call("report", study="s", number=0, step=2**31, value=1.0)
    if sql:
        assert reply["error"]["data"]["kind"] == "invalid_params"
        assert "2147483647" in reply["error"]["message"]
    else:
        assert "result" in reply, reply


def test_grid_values_a_parameter_cannot_take_are_refused_at_create(call: Calls) -> None:
    """Found by the fuzzer: a grid value outside a categorical's choices, or a string for a
    float, made every ask an internal_error after creating its trial."""
    for grid, bad in [({"x": [0.5], "c": ["a", 2**63]}, "c"), ({"x": ["s"], "c": ["a"]}, "x")]:
        error = call.error(
            "create",
            study="g",
            search_space={"x": F, "c": AB},
            sampler={"type": "grid", "search_space": grid},
        )
        assert error["data"]["field"] == f"$.params.sampler.search_space.{bad}", error


def test_list_counts_trials_and_running_trials_on_every_storage(stored: Calls) -> None:
    """``list`` counts with one grouped query on SQL storages (:mod:`trial_counts`)."""
    call = stored
    for name in ("a", "b", "c"):
        call.ok("create", study=name, search_space={"x": F})
    call.ok("ask", study="a", n=3)
    call.ok("ask", study="b", n=2)
    call.ok("tell", study="b", number=0, value=1.0)
    studies = {s["study"]: (s["n_trials"], s["n_running"]) for s in call.ok("list")["studies"]}
    assert studies == {"a": (3, 3), "b": (2, 1), "c": (0, 0)}


def test_a_conflict_another_worker_made_meanwhile_is_still_invalid_params(call: Calls) -> None:
    """The earlier distributions are cached: if another worker sampled a name after this one read
    them, Optuna's own check fires after the trial exists; the trial is failed and the conflict,
    read again, is answered as invalid_params."""
    call.ok("create", study="s", search_space={"x": F})
    call.ok("ask", study="s", search_space={"opt": AB})
    entry = call.endpoint.dispatcher.registry.get("s")
    entry.seen.known.clear()
    entry.seen.known["x"] = entry.distributions["x"]  # stale: as if read before "opt" existed
    entry.seen.known["opt"] = entry.distributions["x"]  # ... and wrongly compatible
    error = call.error("ask", study="s", search_space={"opt": F})
    assert error["data"]["kind"] == "invalid_params", error
    assert error["data"]["field"] == "$.params.search_space.opt"
    assert call.states("s") == ["running", "fail"]
