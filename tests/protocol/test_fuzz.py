"""Hostile input: the fuzzer against the real process, arbitrary params for every method in
process, and one regression test per bug the fuzzer found."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_worker.handlers import ALL
from bridge_worker.wire.dispatch import build_methods
from bridge_worker.wire.errors import ErrorKind
from scripts import fuzz
from tests.helpers import make_endpoint

KINDS = {k.kind for k in ErrorKind}
METHODS = sorted(name for name, m in build_methods(ALL).items() if not m.ends_session)


@pytest.mark.parametrize(("framing", "frames", "seed"), [("line", 4000, 11), ("packet4", 1500, 12)])
def test_fuzzed_worker_answers_every_frame_and_stays_up(
    framing: str, frames: int, seed: int
) -> None:
    summary = fuzz.run(frames, seed, framing, max_frame_bytes=16 * 1024)
    assert summary.failures == [], summary.report()
    assert summary.crashes == 0 and summary.exit_code == 0
    assert summary.stderr_tracebacks == 0
    assert summary.outcomes["internal_error"] == 0
    # the run exercised what it claims to: hostile categories, the valid study, the size limit
    for category in (
        "random_bytes",
        "truncated",
        "invalid_utf8",
        "wrong_type",
        "batch",
        "valid",
        "semantic",
    ):
        assert summary.sent[category] > 0, category
    assert summary.outcomes["parse_error"] > 0 and summary.outcomes["result"] > 0
    assert summary.valid_trials > 0


def test_the_fuzzer_notices_a_wrong_reply() -> None:
    """The checker is not vacuous: a reply with the wrong id or outcome is a failure."""
    expect = fuzz.reply("valid", (5,), fuzz.RESULT)
    ok = fuzz.OutFrame(jsonrpc="2.0", id=5, result={"pong": True})
    assert fuzz.match_reply(expect, ok) == fuzz.RESULT
    with pytest.raises(fuzz.Mismatch):
        fuzz.match_reply(expect, fuzz.OutFrame(jsonrpc="2.0", id=6, result={}))
    bad = fuzz.OutFrame(
        jsonrpc="2.0", id=5, error=fuzz.OutError(-32603, "x", {"kind": "internal_error"})
    )
    with pytest.raises(fuzz.Mismatch):
        fuzz.match_reply(fuzz.reply("any", (5,), fuzz.ANY_OUTCOME), bad)
    with pytest.raises(fuzz.Mismatch):
        fuzz.check_shape(fuzz.OutFrame(jsonrpc="2.0", id=1, result=1, error=bad.error))


# ------------------------------------------------------------------------------------------------
# Arbitrary JSON as the params of every method, in process
# ------------------------------------------------------------------------------------------------

ENDPOINT = make_endpoint()
_setup = [
    {
        "id": 1,
        "method": "create",
        "params": {
            "study": "s",
            "search_space": {
                "x": {"type": "float", "low": 0, "high": 1},
                "c": {"type": "categorical", "choices": ["a", 1, None]},
            },
        },
    },
    {"id": 2, "method": "ask", "params": {"study": "s", "n": 3}},
    {"id": 3, "method": "tell", "params": {"study": "s", "number": 0, "value": 1.0}},
]
for _frame in _setup:
    ENDPOINT.handle(orjson.dumps(_frame))

names = st.sampled_from(
    [
        "s",
        "x",
        "c",
        "number",
        "value",
        "study",
        "n",
        "type",
        "low",
        "high",
        "step",
        "choices",
        "seed",
        "snapshot",
        "body",
        "format",
        "version",
        "",
    ]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | names,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(names | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)
# params shaped like a method's own: its field names with arbitrary values
field_names = {
    name: [f.encode_name for f in __import__("msgspec").structs.fields(m.params_type)]
    for name, m in build_methods(ALL).items()
}


@st.composite
def params_for(draw: st.DrawFn, method: str) -> Any:
    if draw(st.booleans()):
        return draw(json_values)
    fields = field_names[method] or ["study"]
    keys = draw(st.lists(st.sampled_from(fields), unique=True, max_size=len(fields)))
    return {k: draw(json_values) for k in keys}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(METHODS).flatmap(lambda m: st.tuples(st.just(m), params_for(m))),
    st.integers(min_value=1, max_value=2**40),
)
def test_arbitrary_params_get_one_reply_and_never_internal_error(
    call: tuple[str, Any], request_id: int
) -> None:
    method, params = call
    frame = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    out = ENDPOINT.handle(frame.encode())
    assert len(out) == 1, out
    reply = orjson.loads(out[0])
    assert reply["id"] == request_id
    assert ("result" in reply) != ("error" in reply)
    if "error" in reply:
        assert reply["error"]["data"]["kind"] in KINDS
        assert reply["error"]["data"]["kind"] != "internal_error", (frame, reply)


# ------------------------------------------------------------------------------------------------
# Bugs the fuzzer found, fixed: regression tests (the fuzzer keeps sending their inputs too)
# ------------------------------------------------------------------------------------------------


def _answers(*frames: bytes) -> list[dict[str, Any]]:
    endpoint = make_endpoint()
    return [orjson.loads(out) for frame in frames for out in endpoint.handle(frame)]


SPACE = b'"search_space":{"x":{"type":"float","low":0,"high":1}}'


def test_export_after_report_is_not_an_internal_error() -> None:
    replies = _answers(
        b'{"id":1,"method":"create","params":{"study":"s",' + SPACE + b"}}",
        b'{"id":2,"method":"ask","params":{"study":"s"}}',
        b'{"id":3,"method":"report","params":{"study":"s","number":0,"step":0,"value":0.5}}',
        b'{"id":4,"method":"export","params":{"study":"s"}}',
    )
    assert "result" in replies[-1], replies[-1]


def test_float_range_overflow_is_invalid_params_not_internal_error() -> None:
    replies = _answers(
        b'{"id":1,"method":"create","params":{"study":"s","search_space":{"x":{"type":"float",'
        b'"low":-1.7e308,"high":1.7e308}}}}',
        b'{"id":2,"method":"ask","params":{"study":"s"}}',
    )
    assert all(
        r.get("error", {}).get("data", {}).get("kind") != "internal_error" for r in replies
    ), replies


def test_tiny_float_step_is_invalid_params_not_internal_error() -> None:
    (reply,) = _answers(
        b'{"id":1,"method":"create","params":{"study":"s","search_space":{"x":{"type":"float",'
        b'"low":0,"high":1,"step":1e-320}}}}'
    )
    assert reply.get("error", {}).get("data", {}).get("kind") != "internal_error", reply


def test_not_json_is_always_parse_error() -> None:
    replies = _answers(b"5 garbage", b'{"id":1,"method":5,', b"[1, garbage")
    kinds = [r["error"]["data"]["kind"] for r in replies]
    assert kinds == ["parse_error"] * 3, replies
