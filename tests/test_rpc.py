"""The JSON-RPC endpoint and dispatcher without pipes: envelopes, batches, notifications, errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge_worker.dispatch import Dispatcher, build_methods, rpc_method
from bridge_worker.errors import ErrorKind
from bridge_worker.framing import Oversize
from bridge_worker.registry import StudyRegistry
from bridge_worker.rpc import Endpoint
from bridge_worker.schema import PingParams, PingResult

SPACE = {"x": {"type": "float", "low": 0, "high": 1}}


def frames(endpoint: Endpoint, request: Any) -> list[Any]:
    raw = request if isinstance(request, bytes) else orjson.dumps(request)
    return [orjson.loads(out) for out in endpoint.handle(raw)]


def reply(endpoint: Endpoint, request: Any) -> Any:
    (only,) = frames(endpoint, request)
    return only


def error_of(endpoint: Endpoint, request: Any) -> dict[str, Any]:
    answer = reply(endpoint, request)
    assert "result" not in answer, answer
    return answer["error"]  # type: ignore[no-any-return]


def test_error_codes_are_the_documented_ones() -> None:
    documented = {
        "parse_error": -32700, "invalid_request": -32600, "method_not_found": -32601,
        "invalid_params": -32602, "internal_error": -32603, "study_not_found": -32001,
        "study_exists": -32002, "trial_not_found": -32003, "trial_finished": -32004,
        "no_completed_trials": -32005, "frame_too_large": -32006, "storage_error": -32007,
        "snapshot_invalid": -32008,
    }
    actual = {kind.kind: kind.code for kind in ErrorKind}
    assert {k: actual[k] for k in documented} == documented
    assert len(set(actual.values())) == len(actual)


def test_reply_shape_and_id_echo(endpoint: Endpoint) -> None:
    assert reply(endpoint, {"jsonrpc": "2.0", "id": 7, "method": "ping"}) == {
        "jsonrpc": "2.0", "id": 7, "result": {"pong": True},
    }
    assert reply(endpoint, {"id": "abc", "method": "ping", "params": {}})["id"] == "abc"


def test_jsonrpc_field_is_optional_but_must_be_2_0(endpoint: Endpoint) -> None:
    assert reply(endpoint, {"id": 1, "method": "ping"})["result"] == {"pong": True}
    error = error_of(endpoint, {"jsonrpc": "1.0", "id": 1, "method": "ping"})
    assert error["data"]["kind"] == "invalid_request"


@pytest.mark.parametrize("bad_id", [None, 1.5, True, [1], {"a": 1}])
def test_ids_must_be_integers_or_strings(endpoint: Endpoint, bad_id: Any) -> None:
    answer = reply(endpoint, {"id": bad_id, "method": "ping"})
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600


def test_malformed_request_keeps_a_usable_id(endpoint: Endpoint) -> None:
    answer = reply(endpoint, {"id": "q1", "params": {}})
    assert answer["id"] == "q1"
    assert answer["error"]["data"]["kind"] == "invalid_request"


@pytest.mark.parametrize("raw", [b"nope", b'{"id":1,', b"\xff\xfe", b'{"id":1,"method":"p\xffng",'])
def test_unparseable_frames_get_parse_error_with_null_id(endpoint: Endpoint, raw: bytes) -> None:
    answer = reply(endpoint, raw)
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700
    assert answer["error"]["data"]["kind"] == "parse_error"


def test_non_object_json_is_invalid_request(endpoint: Endpoint) -> None:
    for raw in (b"42", b'"ping"', b"null", b"true"):
        assert error_of(endpoint, raw)["data"]["kind"] == "invalid_request"


def test_unknown_method(endpoint: Endpoint) -> None:
    error = error_of(endpoint, {"id": 1, "method": "eval", "params": {"code": "1+1"}})
    assert error == {
        "code": -32601, "message": "unknown method 'eval'",
        "data": {"kind": "method_not_found", "method": "eval"},
    }


def test_invalid_params_name_the_field(endpoint: Endpoint) -> None:
    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "s", "search_space": SPACE}})
    error = error_of(endpoint, {"id": 2, "method": "ask", "params": {"study": "s", "n": 1001}})
    assert error["data"] == {"kind": "invalid_params", "field": "$.params.n"}
    assert "<= 1000" in error["message"]
    error = error_of(endpoint, {"id": 3, "method": "ask", "params": {"study": ""}})
    assert error["data"]["field"] == "$.params.study"
    error = error_of(endpoint, {"id": 4, "method": "ask", "params": []})
    assert error["data"]["field"] == "$.params"
    error = error_of(endpoint, {"id": 5, "method": "ask", "params": {}})
    assert error["data"]["kind"] == "invalid_params"
    assert "study" in error["message"]


def test_notification_gets_no_reply_and_a_failed_one_an_error_notification(
    endpoint: Endpoint,
) -> None:
    assert frames(endpoint, {"method": "ping"}) == []
    (note,) = frames(endpoint, {"method": "tell", "params": {"study": "nope", "number": 0}})
    assert note == {
        "jsonrpc": "2.0",
        "method": "error",
        "params": {
            "method": "tell",
            "error": {
                "code": -32001, "message": "no study named 'nope'",
                "data": {"kind": "study_not_found", "study": "nope"},
            },
        },
    }


def test_batch_replies_in_order_without_notifications(endpoint: Endpoint) -> None:
    out = frames(
        endpoint,
        [
            {"id": 1, "method": "ping"},
            {"method": "ping"},
            {"method": "delete", "params": {"study": "ghost"}},
            {"id": "two", "method": "nope"},
            7,
        ],
    )
    assert len(out) == 2
    note, batch = out
    assert note["method"] == "error"
    assert note["params"]["error"]["data"]["kind"] == "study_not_found"
    assert [r["id"] for r in batch] == [1, "two", None]
    assert batch[0]["result"] == {"pong": True}
    assert batch[1]["error"]["code"] == -32601
    assert batch[2]["error"]["code"] == -32600


def test_batch_of_notifications_only_writes_nothing(endpoint: Endpoint) -> None:
    assert frames(endpoint, [{"method": "ping"}, {"method": "ping"}]) == []


def test_empty_and_broken_batches(endpoint: Endpoint) -> None:
    assert error_of(endpoint, b"[]")["data"]["kind"] == "invalid_request"
    assert error_of(endpoint, b"  [1, 2")["data"]["kind"] == "parse_error"


def test_oversize_marker_becomes_frame_too_large(endpoint: Endpoint) -> None:
    (out,) = endpoint.handle(Oversize(1024))
    answer = orjson.loads(out)
    assert answer["id"] is None
    assert answer["error"]["code"] == -32006
    assert answer["error"]["data"] == {"kind": "frame_too_large", "limit": 1024}


def test_shutdown_replies_then_closes(endpoint: Endpoint) -> None:
    assert not endpoint.closing
    assert reply(endpoint, {"id": 1, "method": "shutdown"}) == {
        "jsonrpc": "2.0", "id": 1, "result": {},
    }
    assert endpoint.closing


def test_unexpected_exception_becomes_internal_error_and_the_endpoint_goes_on() -> None:
    @rpc_method("boom")
    def boom(registry: StudyRegistry, params: PingParams) -> PingResult:
        raise ZeroDivisionError("division by zero")

    @rpc_method("ping")
    def ping(registry: StudyRegistry, params: PingParams) -> PingResult:
        return PingResult()

    endpoint = Endpoint(Dispatcher(StudyRegistry(), build_methods([boom, ping])))
    error = error_of(endpoint, {"id": 1, "method": "boom"})
    assert error["code"] == -32603
    assert error["data"] == {"kind": "internal_error"}
    assert "ZeroDivisionError" in error["message"]
    assert reply(endpoint, {"id": 2, "method": "ping"})["result"] == {"pong": True}


def test_full_cycle_in_process(endpoint: Endpoint) -> None:
    created = reply(
        endpoint,
        {"id": 1, "method": "create", "params": {
            "study": "s", "direction": "maximize", "search_space": SPACE,
            "sampler": {"type": "random", "seed": 3}, "user_attrs": {"owner": "me"},
        }},
    )["result"]
    assert created == {
        "study": "s", "directions": ["maximize"], "created": True, "n_trials": 0, "n_running": 0
    }
    asked = reply(endpoint, {"id": 2, "method": "ask", "params": {"study": "s", "n": 3}})
    trials = asked["result"]["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(0 <= t["params"]["x"] <= 1 for t in trials)
    for t in trials:
        told = reply(endpoint, {"id": 3, "method": "tell", "params": {
            "study": "s", "number": t["number"], "value": t["params"]["x"]}})
        assert told["result"] == {"number": t["number"], "state": "complete",
                                  "values": [t["params"]["x"]]}
    best = reply(endpoint, {"id": 4, "method": "best", "params": {"study": "s"}})["result"]
    top = max(trials, key=lambda t: t["params"]["x"])
    assert best == {"trials": [{
        "number": top["number"], "state": "complete", "params": top["params"],
        "values": [top["params"]["x"]], "user_attrs": {},
    }]}


@pytest.mark.parametrize("frame", [
    b'{"id":9,"method":"create","params":{"study":"\xff"}}',
    # An unknown member: the schema would reject it, but the bytes are not JSON in the first place.
    b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"\xff\xfe"}}',
    b'{"jsonrpc":"2.0","id":9,"method":"p\xc3\x28ng"}',
    b'{"id":9,"method":"p\xffng"}',
    b'{"jsonrpc":"2.0","id":9,"method":"ping","meta":"\xed\xa0\x80"}',  # encoded surrogate
])
def test_invalid_utf8_anywhere_is_a_parse_error_with_the_id(
    endpoint: Endpoint, frame: bytes
) -> None:
    answer = reply(endpoint, frame)
    assert answer["id"] == 9
    assert answer["error"]["code"] == -32700
    assert answer["error"]["data"] == {"kind": "parse_error"}
    assert "not UTF-8" in answer["error"]["message"]


def test_invalid_utf8_in_a_batch_is_one_parse_error_with_a_null_id(endpoint: Endpoint) -> None:
    frame = b'[{"id":1,"method":"ping"},{"id":2,"method":"ping","params":{"x":"\xff"}}]'
    answer = reply(endpoint, frame)
    assert answer["id"] is None
    assert answer["error"]["data"] == {"kind": "parse_error"}
