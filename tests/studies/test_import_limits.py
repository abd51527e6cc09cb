"""Imported and added data obey the limits created data does (issue 29): a snapshot's checksum
proves nothing about its author, so a forged one must not make later asks expensive."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bridge_worker.studies.snapshot import checksum
from bridge_worker.wire.limits import Limits
from bridge_worker.wiring import build_endpoint
from tests.helpers import endpoint_reply, endpoint_result

COSTLY = Limits(
    max_ei_candidates=100,
    max_bruteforce_candidates=50,
    max_choices=5,
    max_user_attrs=3,
    max_user_attr_bytes=40,
)
X = {"type": "float", "low": 0.0, "high": 1.0}
K = {"type": "int", "low": 0, "high": 9}


def exported(sampler: dict[str, Any], space: dict[str, Any], n_trials: int = 2) -> Any:
    """A legitimate snapshot made by a worker with default limits."""
    ep = build_endpoint()
    endpoint_result(ep, "create", {"study": "s", "sampler": sampler, "search_space": space})
    for trial in endpoint_result(ep, "ask", {"study": "s", "n": n_trials})["trials"]:
        endpoint_result(ep, "tell", {"study": "s", "number": trial["number"], "value": 1.0})
    return endpoint_result(ep, "export", {"study": "s"})["snapshot"]


def forged(snapshot: Any, change: Callable[[Any], None]) -> Any:
    """The snapshot with its body changed and its checksum recomputed, as anyone can."""
    document = copy.deepcopy(snapshot)
    change(document["body"])
    document["checksum"] = checksum(document["body"])
    return document


def set_tpe_candidates(body: Any) -> None:
    body["config"]["sampler"]["n_ei_candidates"] = 10_000


def set_bruteforce_range(body: Any) -> None:
    body["config"]["search_space"]["k"]["high"] = 10**8


def widen_a_trials_distribution(body: Any) -> None:
    body["trials"][0]["distributions"]["k"]["high"] = 10**8


def many_study_attrs(body: Any) -> None:
    body["user_attrs"] = {f"a{i}": i for i in range(4)}


def big_trial_attr(body: Any) -> None:
    body["trials"][1]["user_attrs"] = {"a": "x" * 64}


def many_trial_system_attrs(body: Any) -> None:
    body["trials"][0]["system_attrs"] = {f"s{i}": i for i in range(4)}


def many_choices(body: Any) -> None:
    body["trials"][0]["distributions"]["k"] = {"type": "categorical", "choices": list(range(20))}
    body["trials"][0]["params"]["k"] = 0


@pytest.mark.parametrize(
    ("sampler", "space", "change", "limit", "field"),
    [
        ({"type": "tpe"}, {"x": X}, set_tpe_candidates, "max_ei_candidates", None),
        (
            {"type": "bruteforce"},
            {"k": K},
            set_bruteforce_range,
            "max_bruteforce_candidates",
            "values of $.params.snapshot.body.config.search_space.k",
        ),
        (
            {"type": "bruteforce"},
            {"k": K},
            widen_a_trials_distribution,
            "max_bruteforce_candidates",
            "values of $.params.snapshot.body.trials[0]",
        ),
        (
            {"type": "random"},
            {"x": X},
            many_study_attrs,
            "max_user_attrs",
            "$.params.snapshot.body.user_attrs",
        ),
        (
            {"type": "random"},
            {"x": X},
            big_trial_attr,
            "max_user_attr_bytes",
            "$.params.snapshot.body.trials[1].user_attrs",
        ),
        (
            {"type": "random"},
            {"x": X},
            many_trial_system_attrs,
            "max_user_attrs",
            "$.params.snapshot.body.trials[0].system_attrs",
        ),
        (
            {"type": "random"},
            {"k": K},
            many_choices,
            "max_choices",
            "$.params.snapshot.body.trials[0].distributions.k",
        ),
    ],
)
def test_a_forged_snapshot_over_a_limit_is_refused(
    sampler: dict[str, Any],
    space: dict[str, Any],
    change: Callable[[Any], None],
    limit: str,
    field: str | None,
) -> None:
    snapshot = exported(sampler, space)
    ep = build_endpoint(limits=COSTLY)
    endpoint_result(ep, "import", {"snapshot": snapshot, "study": "legit"})  # the original is fine
    answer = endpoint_reply(ep, "import", {"snapshot": forged(snapshot, change)})
    error = answer["error"]
    assert error["data"]["kind"] == "limit_exceeded", error
    assert error["data"]["limit"] == limit
    if field is not None:
        assert field in error["message"]
    assert [s["study"] for s in endpoint_result(ep, "list", {})["studies"]] == [
        "legit"
    ]  # nothing written


def test_a_forged_qmc_index_is_refused() -> None:
    pytest.importorskip("scipy")
    snapshot = exported({"type": "qmc", "qmc_type": "halton", "seed": 1}, {"x": X}, n_trials=3)
    (key,) = [k for k in snapshot["body"]["system_attrs"] if k.startswith("qmc:")]
    assert 0 <= snapshot["body"]["system_attrs"][key] < 3  # at most one index per trial
    ep = build_endpoint()
    endpoint_result(ep, "import", {"snapshot": snapshot, "study": "legit"})
    for bad in (10**12, 3, -2, "1", 1.5):
        answer = endpoint_reply(
            ep,
            "import",
            {
                "snapshot": forged(
                    snapshot, lambda body, bad=bad: body["system_attrs"].__setitem__(key, bad)
                )
            },
        )
        assert answer["error"]["data"]["kind"] == "snapshot_invalid", (bad, answer)
        assert answer["error"]["data"]["reason"] == "bad_shape"
        assert "QMC sample index" in answer["error"]["message"]


def test_add_trials_and_enqueue_obey_the_user_attr_limits() -> None:
    ep = build_endpoint(limits=COSTLY)
    endpoint_result(
        ep, "create", {"study": "s", "sampler": {"type": "random"}, "search_space": {"x": X}}
    )
    many = {f"a{i}": i for i in range(4)}
    for method, params, field in [
        (
            "add_trials",
            {
                "trials": [
                    {"params": {"x": 0.5}, "value": 1.0},
                    {"params": {"x": 0.5}, "value": 1.0, "user_attrs": many},
                ]
            },
            "$.params.trials[1].user_attrs",
        ),
        (
            "add_trials",
            {"trials": [{"params": {"x": 0.5}, "value": 1.0, "user_attrs": {"a": "x" * 64}}]},
            "$.params.trials[0].user_attrs",
        ),
        ("enqueue", {"params": {"x": 0.5}, "user_attrs": many}, "$.params.user_attrs"),
    ]:
        answer = endpoint_reply(ep, method, {"study": "s", **params})
        assert answer["error"]["data"]["kind"] == "limit_exceeded", answer
        assert field in answer["error"]["message"]
    assert (
        endpoint_result(ep, "trials", {"study": "s"})["trials"] == []
    )  # nothing stored or enqueued
