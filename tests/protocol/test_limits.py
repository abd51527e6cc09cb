"""Operator limits: each one hit by a frame gives ``limit_exceeded`` naming it; none crashes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.nesting import nesting_depth
from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wiring import build_endpoint
from tests.helpers import PYTHON

SMALL = Limits(
    max_batch=3,
    max_depth=8,
    max_ask=4,
    max_name_length=10,
    max_params=2,
    max_choices=3,
    max_studies=2,
)


def endpoint(limits: Limits = SMALL) -> Endpoint:
    return build_endpoint(limits=limits)


def reply(ep: Endpoint, frame: Any) -> Any:
    raw = frame if isinstance(frame, bytes) else orjson.dumps(frame)
    (out,) = ep.handle(raw)
    return orjson.loads(out)


def limit_of(answer: Any) -> str:
    assert answer["error"]["code"] == -32009, answer
    assert answer["error"]["data"]["kind"] == "limit_exceeded"
    limit: str = answer["error"]["data"]["limit"]
    return limit


X = {"type": "float", "low": 0, "high": 1}


@pytest.mark.parametrize(
    ("method", "params", "limit"),
    [
        ("create", {"study": "a-long-study-name"}, "max_name_length"),
        ("create", {"study": "s", "search_space": {"x": X, "y": X, "z": X}}, "max_params"),
        ("create", {"study": "s", "search_space": {"a-long-param-name": X}}, "max_name_length"),
        (
            "create",
            {"study": "s", "search_space": {"c": {"type": "categorical", "choices": [1, 2, 3, 4]}}},
            "max_choices",
        ),
        ("ask", {"study": "ok", "n": 5}, "max_ask"),
        ("ask", {"study": "ok", "search_space": {"y": X, "z": X}}, "max_params"),
    ],
)
def test_limit_exceeded_names_the_limit(method: str, params: dict[str, Any], limit: str) -> None:
    ep = endpoint()
    assert "result" in reply(
        ep, {"id": 0, "method": "create", "params": {"study": "ok", "search_space": {"x": X}}}
    )
    answer = reply(ep, {"id": 1, "method": method, "params": params})
    assert answer["id"] == 1
    assert limit_of(answer) == limit
    assert answer["error"]["data"]["max"] == getattr(SMALL, limit)
    assert f"--{limit.replace('_', '-')}" in answer["error"]["message"]


def test_studies_per_worker() -> None:
    ep = endpoint()
    for name in ("a", "b"):
        assert "result" in reply(ep, {"id": 1, "method": "create", "params": {"study": name}})
    assert limit_of(reply(ep, {"id": 2, "method": "create", "params": {"study": "c"}})) == (
        "max_studies"
    )
    # loading an existing one is not a new study
    assert "result" in reply(
        ep, {"id": 3, "method": "create", "params": {"study": "a", "load_if_exists": True}}
    )
    reply(ep, {"id": 4, "method": "delete", "params": {"study": "b"}})
    assert "result" in reply(ep, {"id": 5, "method": "create", "params": {"study": "c"}})


@pytest.mark.parametrize(
    ("method", "params", "limit", "maximum"),
    [
        ("ask", {"study": "s", "n": 5}, "max_ask", 4),
        ("ask", {"study": "s", "n": 1001}, "max_ask", 4),
        ("create", {"study": "s" * 11}, "max_name_length", 10),
        ("create", {"study": "s" * 513}, "max_name_length", 10),
    ],
)
def test_any_value_over_an_operator_limit_names_the_operators_maximum(
    method: str, params: dict[str, Any], limit: str, maximum: int
) -> None:
    ep = endpoint()
    reply(ep, {"id": 1, "method": "create", "params": {"study": "s"}})
    answer = reply(ep, {"id": 2, "method": method, "params": params})
    assert answer["id"] == 2 and limit_of(answer) == limit
    assert answer["error"]["data"]["max"] == maximum
    assert f"at most {maximum} (--{limit.replace('_', '-')})" in answer["error"]["message"]


def test_a_batch_over_the_limit_answers_every_request_id() -> None:
    ep = endpoint()
    batch = [
        {"id": "a", "method": "ping"},
        {"method": "ping"},
        {"id": 2.5, "method": "ping"},
        {"id": None, "method": "ping"},
    ]
    answer = reply(ep, batch)
    assert [a["id"] for a in answer] == ["a", 2.5, None]
    assert all(limit_of(a) == "max_batch" and a["error"]["data"]["max"] == 3 for a in answer)
    only_notifications = reply(ep, [{"method": "ping"}] * 4)
    assert only_notifications["id"] is None and limit_of(only_notifications) == "max_batch"


def test_batch_length() -> None:
    ep = endpoint()
    answer = reply(ep, [{"id": i, "method": "ping"} for i in range(4)])
    assert [a["id"] for a in answer] == [0, 1, 2, 3]
    assert all(limit_of(a) == "max_batch" for a in answer)
    assert len(reply(ep, [{"id": i, "method": "ping"} for i in range(3)])) == 3


@pytest.mark.parametrize("depth", [9, 200, 5000, 200_000])
def test_nesting_depth_is_refused_before_decoding(depth: int) -> None:
    ep = endpoint()
    nested = b"[" * depth + b"]" * depth
    answer = reply(
        ep, b'{"id":7,"method":"create","params":{"study":"s","user_attrs":{"a":' + nested + b"}}}"
    )
    assert limit_of(answer) == "max_depth"
    assert answer["error"]["data"]["value"] == depth + 3
    assert answer["id"] in (7, None)  # salvaged when the decoder can still read it
    assert reply(ep, {"id": 8, "method": "ping"})["result"] == {"pong": True}


def test_nesting_inside_strings_does_not_count() -> None:
    ep = endpoint()
    brackets = "[" * 500 + '\\"{{{'
    answer = reply(
        ep,
        {"id": 1, "method": "create", "params": {"study": "s", "user_attrs": {"note": brackets}}},
    )
    assert "result" in answer


def test_nesting_depth_measure() -> None:
    assert nesting_depth(b'{"a":[1,[2]]}', 1) == 3
    assert nesting_depth(b'{"a":"[[[[[[[[["}', 2) == 1
    assert nesting_depth(b'{"a":"\\"[[[[[[[[["}', 2) == 1
    assert nesting_depth(b"[]", 5) == 0  # proven shallow without measuring


def test_default_limits_take_the_deepest_frame_the_decoder_can_read() -> None:
    ep = endpoint(Limits())
    nested = b"[" * 60 + b"]" * 60
    answer = reply(
        ep, b'{"id":1,"method":"create","params":{"study":"s","user_attrs":{"a":' + nested + b"}}}"
    )
    assert "result" in answer


def test_limits_on_the_command_line() -> None:
    with Worker.spawn(args=["--max-ask", "2", "--max-studies", "1"]) as worker:
        worker.create("one", search_space={"x": {"type": "int", "low": 0, "high": 9}})
        with pytest.raises(WorkerError) as caught:
            worker.ask("one", n=3)
        assert caught.value.data == {
            "kind": "limit_exceeded",
            "limit": "max_ask",
            "value": 3,
            "max": 2,
        }
        with pytest.raises(WorkerError) as caught:
            worker.create("two")
        assert caught.value.data["limit"] == "max_studies"
        assert len(worker.ask("one", n=2)) == 2


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--max-ask=5000", b"cannot exceed the protocol's bound 1000"),
        ("--max-depth=0", b"must be at least 1"),
    ],
)
def test_impossible_limits_are_refused(flag: str, message: bytes) -> None:
    import subprocess

    done = subprocess.run(
        [PYTHON, "-m", "bridge_worker", flag],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr and done.stdout == b""


# ---- issue 18: every frame has a budget ------------------------------------------------------

COSTLY = Limits(
    max_ask_values=20,
    max_ei_candidates=100,
    max_bruteforce_candidates=50,
    max_choice_length=8,
    max_user_attrs=3,
    max_user_attr_bytes=40,
)


def space(n: int) -> dict[str, Any]:
    return {f"p{i}": X for i in range(n)}


@pytest.mark.parametrize(
    ("frames", "limit"),
    [
        # a 46-byte ask of BruteForce on 0..10^8 took 19 s and 7.6 GB
        (
            [
                (
                    "create",
                    {
                        "study": "b",
                        "sampler": {"type": "bruteforce"},
                        "search_space": {"k": {"type": "int", "low": 0, "high": 10**8}},
                    },
                )
            ],
            "max_bruteforce_candidates",
        ),
        (
            [
                (
                    "create",
                    {
                        "study": "b",
                        "sampler": {"type": "bruteforce"},
                        "search_space": {
                            "k": {"type": "float", "low": 0, "high": 1e6, "step": 1e-3}
                        },
                    },
                )
            ],
            "max_bruteforce_candidates",
        ),
        (
            [
                ("create", {"study": "b", "sampler": {"type": "bruteforce"}}),
                (
                    "ask",
                    {"study": "b", "search_space": {"k": {"type": "int", "low": 0, "high": 51}}},
                ),
            ],
            "max_bruteforce_candidates",
        ),
        # ask n=5 with TPE n_ei_candidates=10000 on 100 params: 50 s and +4.6 GB
        (
            [
                (
                    "create",
                    {
                        "study": "t",
                        "sampler": {"type": "tpe", "n_ei_candidates": 10_000},
                        "search_space": space(1),
                    },
                )
            ],
            "max_ei_candidates",
        ),
        ([("create", {"study": "t", "search_space": space(5)})], "max_ei_candidates"),
        (
            [
                ("create", {"study": "t", "sampler": {"type": "random"}, "search_space": space(3)}),
                ("ask", {"study": "t", "n": 7}),
            ],
            "max_ask_values",
        ),
        (
            [
                ("create", {"study": "t", "sampler": {"type": "random"}}),
                ("ask", {"study": "t", "n": 2, "search_space": space(11)}),
            ],
            "max_ask_values",
        ),
        (
            [
                (
                    "create",
                    {
                        "study": "c",
                        "search_space": {
                            "c": {"type": "categorical", "choices": ["short", "123456789"]}
                        },
                    },
                )
            ],
            "max_choice_length",
        ),
        (
            [("create", {"study": "u", "user_attrs": {"a": 1, "b": 2, "c": 3, "d": 4}})],
            "max_user_attrs",
        ),
        ([("create", {"study": "u", "user_attrs": {"a": "x" * 40}})], "max_user_attr_bytes"),
        (
            [
                ("create", {"study": "u", "user_attrs": {"a": 1, "b": 2}}),
                ("set_attrs", {"study": "u", "user_attrs": {"c": 3, "d": 4}}),
            ],
            "max_user_attrs",
        ),
        (
            [
                ("create", {"study": "u", "sampler": {"type": "random"}, "search_space": space(1)}),
                ("ask", {"study": "u"}),
                ("set_attrs", {"study": "u", "number": 0, "user_attrs": {"a": 1, "b": 2}}),
                ("tell", {"study": "u", "number": 0, "value": 1, "user_attrs": {"c": 1, "d": 2}}),
            ],
            "max_user_attrs",
        ),
    ],
)
def test_costly_frames_are_refused_at_once(frames: list[tuple[str, Any]], limit: str) -> None:
    ep = endpoint(COSTLY)
    *setup, (method, params) = frames
    for i, (m, p) in enumerate(setup):
        assert "result" in reply(ep, {"jsonrpc": "2.0", "id": i, "method": m, "params": p})
    answer = reply(ep, {"jsonrpc": "2.0", "id": "x", "method": method, "params": params})
    assert limit_of(answer) == limit
    assert answer["error"]["data"]["value"] > answer["error"]["data"]["max"]


def test_bruteforce_needs_a_step_on_floats() -> None:
    answer = reply(
        endpoint(COSTLY),
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "create",
            "params": {"study": "b", "sampler": {"type": "bruteforce"}, "search_space": {"f": X}},
        },
    )
    assert answer["error"]["data"]["kind"] == "invalid_params"
    assert answer["error"]["data"]["field"] == "$.params.search_space.f.step"


def test_frames_within_the_costly_limits_are_answered() -> None:
    ep = endpoint(COSTLY)
    frames = [
        (
            "create",
            {
                "study": "b",
                "sampler": {"type": "bruteforce"},
                "search_space": {"k": {"type": "int", "low": 0, "high": 49}},
            },
        ),
        ("ask", {"study": "b", "n": 4}),
        (
            "create",
            {
                "study": "t",
                "sampler": {"type": "tpe", "n_ei_candidates": 50},
                "search_space": space(2),
                "user_attrs": {"a": 1, "b": 2, "c": 3},
            },
        ),
        ("ask", {"study": "t", "n": 10}),
        ("set_attrs", {"study": "t", "user_attrs": {"a": 2, "b": "x" * 30}}),
    ]
    for i, (method, params) in enumerate(frames):
        answer = reply(ep, {"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        assert "result" in answer, answer
