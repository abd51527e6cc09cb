"""The JSON-RPC endpoint and dispatcher without pipes: envelopes, batches, notifications, errors."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import pytest

from bridge_worker.studies.registry import StudyRegistry
from bridge_worker.wire.dispatch import rpc_method
from bridge_worker.wire.errors import ErrorKind
from bridge_worker.wire.framing import Oversize
from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wire.schema import PingParams, PingResult
from bridge_worker.wiring import build_endpoint

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
        "parse_error": -32700,
        "invalid_request": -32600,
        "method_not_found": -32601,
        "invalid_params": -32602,
        "internal_error": -32603,
        "study_not_found": -32001,
        "study_exists": -32002,
        "trial_not_found": -32003,
        "trial_finished": -32004,
        "no_completed_trials": -32005,
        "frame_too_large": -32006,
        "storage_error": -32007,
        "snapshot_invalid": -32008,
    }
    actual = {kind.kind: kind.code for kind in ErrorKind}
    assert {k: actual[k] for k in documented} == documented
    assert len(set(actual.values())) == len(actual)


def test_reply_shape_and_id_echo(endpoint: Endpoint) -> None:
    assert reply(endpoint, {"jsonrpc": "2.0", "id": 7, "method": "ping"}) == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"pong": True},
    }
    assert reply(endpoint, {"id": "abc", "method": "ping", "params": {}})["id"] == "abc"


def test_jsonrpc_field_is_optional_but_must_be_2_0(endpoint: Endpoint) -> None:
    assert reply(endpoint, {"id": 1, "method": "ping"})["result"] == {"pong": True}
    error = error_of(endpoint, {"jsonrpc": "1.0", "id": 1, "method": "ping"})
    assert error["data"] == {"kind": "invalid_request", "allowed": ["2.0"]}


@pytest.mark.parametrize("bad_id", [True, False, [1], {"a": 1}])
def test_ids_must_be_numbers_strings_or_null(endpoint: Endpoint, bad_id: Any) -> None:
    answer = reply(endpoint, {"id": bad_id, "method": "ping"})
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600
    assert "`id` must be a string, a number or null" in answer["error"]["message"]


@pytest.mark.parametrize(
    "raw_id",
    [b"null", b"1.5", b"1.0", b"1e2", b"-0", b"12345678901234567890123", b'"a\\u00e9"', b"7"],
)
def test_any_number_string_or_null_id_is_echoed_byte_for_byte(
    endpoint: Endpoint, raw_id: bytes
) -> None:
    (out,) = endpoint.handle(b'{"jsonrpc":"2.0","id":' + raw_id + b',"method":"ping"}')
    assert out == b'{"jsonrpc":"2.0","id":' + raw_id + b',"result":{"pong":true}}'
    (out,) = endpoint.handle(b'{"id":' + raw_id + b',"method":"nope"}')
    assert out.startswith(b'{"jsonrpc":"2.0","id":' + raw_id + b',"error":')


def test_malformed_request_keeps_a_usable_id(endpoint: Endpoint) -> None:
    answer = reply(endpoint, {"id": "q1", "params": {}})
    assert answer["id"] == "q1"
    assert answer["error"]["data"]["kind"] == "invalid_request"


@pytest.mark.parametrize(
    "raw",
    [b"nope", b'{"id":1,', b"\xff\xfe", b'{"id":1,"method":"p\xffng",', b'{"method":"p\xffng"}'],
)
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
        "code": -32601,
        "message": "unknown method 'eval'",
        "data": {
            "kind": "method_not_found",
            "method": "eval",
            "allowed": sorted(
                [
                    "ping",
                    "create",
                    "ask",
                    "tell",
                    "best",
                    "trials",
                    "report",
                    "enqueue",
                    "set_attrs",
                    "importance",
                    "list",
                    "delete",
                    "export",
                    "import",
                    "shutdown",
                    "add_trials",
                    "plot",
                    "renew",
                    "set_stop",
                    "copy_trials",
                    "artifact_put",
                    "artifacts",
                    "artifact_get",
                ]
            ),
        },
    }


def test_invalid_params_name_the_field(endpoint: Endpoint) -> None:
    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "s", "search_space": SPACE}})
    error = error_of(endpoint, {"id": 2, "method": "ask", "params": {"study": "s", "n": 0}})
    assert error["data"] == {"kind": "invalid_params", "field": "$.params.n"}
    assert ">= 1" in error["message"]
    error = error_of(endpoint, {"id": 3, "method": "ask", "params": {"study": ""}})
    assert error["data"]["field"] == "$.params.study"
    error = error_of(endpoint, {"id": 4, "method": "ask", "params": ["s"]})
    assert error["data"]["field"] == "$.params"
    assert "params are by name" in error["message"]
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
                "code": -32001,
                "message": "no study named 'nope'",
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
        "jsonrpc": "2.0",
        "id": 1,
        "result": {},
    }
    assert endpoint.closing


def test_unexpected_exception_becomes_internal_error_and_the_endpoint_goes_on() -> None:
    @rpc_method("boom")
    def boom(registry: StudyRegistry, params: PingParams) -> PingResult:
        raise ZeroDivisionError("division by zero")

    @rpc_method("ping")
    def ping(registry: StudyRegistry, params: PingParams) -> PingResult:
        return PingResult()

    endpoint = build_endpoint(handlers=[boom, ping])
    error = error_of(endpoint, {"id": 1, "method": "boom"})
    assert error["code"] == -32603
    assert error["data"] == {"kind": "internal_error"}
    assert "ZeroDivisionError" in error["message"]
    assert reply(endpoint, {"id": 2, "method": "ping"})["result"] == {"pong": True}


def test_full_cycle_in_process(endpoint: Endpoint) -> None:
    created = reply(
        endpoint,
        {
            "id": 1,
            "method": "create",
            "params": {
                "study": "s",
                "direction": "maximize",
                "search_space": SPACE,
                "sampler": {"type": "random", "seed": 3},
                "user_attrs": {"owner": "me"},
            },
        },
    )["result"]
    assert created == {
        "study": "s",
        "directions": ["maximize"],
        "created": True,
        "n_trials": 0,
        "n_running": 0,
    }
    asked = reply(endpoint, {"id": 2, "method": "ask", "params": {"study": "s", "n": 3}})
    trials = asked["result"]["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(0 <= t["params"]["x"] <= 1 for t in trials)
    for t in trials:
        told = reply(
            endpoint,
            {
                "id": 3,
                "method": "tell",
                "params": {"study": "s", "number": t["number"], "value": t["params"]["x"]},
            },
        )
        assert told["result"] == {
            "number": t["number"],
            "state": "complete",
            "values": [t["params"]["x"]],
        }
    best = reply(endpoint, {"id": 4, "method": "best", "params": {"study": "s"}})["result"]
    top = max(trials, key=lambda t: t["params"]["x"])
    assert best == {
        "trials": [
            {
                "number": top["number"],
                "state": "complete",
                "params": top["params"],
                "values": [top["params"]["x"]],
                "user_attrs": {},
            }
        ]
    }


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":9,"method":"create","params":{"study":"\xff"}}',
        # An unknown member: the schema would reject it, but the bytes are not JSON in the
        # first place.
        b'{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":"\xff\xfe"}}',
        b'{"jsonrpc":"2.0","id":9,"method":"p\xc3\x28ng"}',
        b'{"id":9,"method":"p\xffng"}',
        b'{"jsonrpc":"2.0","id":9,"method":"ping","meta":"\xed\xa0\x80"}',  # encoded surrogate
    ],
)
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


# ---- JSON-RPC 2.0 edges as generic clients meet them ----------------------------------------


@pytest.mark.parametrize("params", [b'"bar"', b"null", b"7", b"true"])
def test_params_that_are_not_structured_are_an_invalid_request(
    endpoint: Endpoint, params: bytes
) -> None:
    answer = reply(endpoint, b'{"jsonrpc":"2.0","id":3,"method":"ping","params":' + params + b"}")
    assert answer["id"] == 3
    assert answer["error"]["code"] == -32600
    assert answer["error"]["data"]["kind"] == "invalid_request"
    assert "`params` must be an object" in answer["error"]["message"]


def test_empty_params_array_means_no_arguments(endpoint: Endpoint) -> None:
    assert reply(endpoint, {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": []}) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"pong": True},
    }
    error = error_of(endpoint, {"id": 2, "method": "ping", "params": [1]})
    assert error["data"] == {"kind": "invalid_params", "field": "$.params"}
    assert "params are by name" in error["message"]


def test_a_byte_order_mark_at_the_start_of_a_frame_is_ignored(endpoint: Endpoint) -> None:
    assert reply(endpoint, b'\xef\xbb\xbf{"id":1,"method":"ping"}')["result"] == {"pong": True}
    assert reply(endpoint, b'\xef\xbb\xbf[{"id":2,"method":"ping"}]')[0]["id"] == 2


def test_an_escaped_lone_surrogate_is_named_and_keeps_the_id(endpoint: Endpoint) -> None:
    frame = b'{"jsonrpc":"2.0","id":"c1","method":"create","params":{"study":"bad\\ud800name"}}'
    answer = reply(endpoint, frame)
    assert answer["id"] == "c1"
    assert answer["error"]["data"]["kind"] == "parse_error"
    assert "lone surrogate" in answer["error"]["message"]
    assert "\\ud800" in answer["error"]["message"]
    # a complete pair is text, and an escaped backslash before "ud800" is no escape at all
    ok = b'{"id":2,"method":"create","params":{"study":"a\\ud83d\\ude00b\\\\ud800"}}'
    assert reply(endpoint, ok)["result"]["study"] == "a\U0001f600b\\ud800"
    assert reply(endpoint, b'{"id":3,"method":"ping","params":{"x":"\\udc00"}}')["id"] == 3


def test_nan_is_explained_both_as_a_literal_and_encoded_as_null(endpoint: Endpoint) -> None:
    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "s", "search_space": SPACE}})
    reply(endpoint, {"id": 2, "method": "ask", "params": {"study": "s"}})
    for literal in (b"NaN", b"-Infinity"):
        answer = reply(
            endpoint,
            b'{"id":3,"method":"tell","params":{"study":"s","number":0,'
            b'"value":' + literal + b', "note":"NaN"}}',
        )
        assert answer["id"] == 3
        assert answer["error"]["data"]["kind"] == "parse_error"
        assert "NaN and Infinity are not JSON" in answer["error"]["message"]
        assert '"state":"fail"' in answer["error"]["message"]
    for params in (
        {"study": "s", "number": 0, "value": None},
        {"study": "s", "number": 0, "values": [None]},
    ):
        error = error_of(endpoint, {"id": 4, "method": "tell", "params": params})
        assert error["data"]["kind"] == "invalid_params"
        assert "JSON has no NaN" in error["message"] and '"state":"fail"' in error["message"]


def test_unknown_top_level_members_are_ignored_but_params_stay_strict(
    endpoint: Endpoint,
) -> None:
    answer = reply(endpoint, {"jsonrpc": "2.0", "id": 1, "method": "ping", "meta": {"trace": 1}})
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": {"pong": True}}
    error = error_of(endpoint, {"id": 2, "method": "ping", "params": {"meta": 1}})
    assert error["data"]["kind"] == "invalid_params"


def test_strict_mode_needs_jsonrpc_and_only_logs_failed_notifications() -> None:
    strict = build_endpoint(strict=True)
    assert strict.handle(b'{"jsonrpc":"2.0","method":"ask","params":{"study":"nobody"}}') == []
    assert strict.handle(b'[{"jsonrpc":"2.0","method":"nope"}]') == []
    error = error_of(strict, {"id": 1, "method": "ping"})
    assert error["data"]["kind"] == "invalid_request"
    assert '"jsonrpc":"2.0" is required' in error["message"]
    assert reply(strict, {"jsonrpc": "2.0", "id": 2, "method": "ping"})["result"] == {"pong": True}


@pytest.mark.parametrize(
    ("method", "params", "field", "allowed"),
    [
        (
            "create",
            {"study": "s", "direction": "maximise"},
            "$.params.direction",
            ["maximize", "minimize"],
        ),
        (
            "create",
            {"study": "s", "directions": ["minimize", "max"]},
            "$.params.directions[1]",
            ["maximize", "minimize"],
        ),
        (
            "trials",
            {"study": "s", "states": ["done"]},
            "$.params.states[0]",
            ["complete", "fail", "pruned", "running", "waiting"],
        ),
        (
            "tell",
            {"study": "s", "number": 0, "state": "failed"},
            "$.params.state",
            ["complete", "fail", "pruned"],
        ),
        (
            "create",
            {"study": "s", "sampler": {"type": "nsga2", "crossover": "blx"}},
            "$.params.sampler.crossover",
            ["blxalpha", "sbx", "spx", "undx", "uniform", "vsbx"],
        ),
        (
            "create",
            {"study": "s", "sampler": {"type": "qmc", "qmc_type": "sobel"}},
            "$.params.sampler.qmc_type",
            ["halton", "lhs", "orthogonal_lhs", "sobol"],
        ),
    ],
)
def test_every_closed_value_set_lists_its_allowed_values(
    endpoint: Endpoint, method: str, params: dict[str, Any], field: str, allowed: list[str]
) -> None:
    error = error_of(endpoint, {"id": 1, "method": method, "params": params})
    assert error["data"] == {"kind": "invalid_params", "field": field, "allowed": allowed}


def test_ask_without_any_search_space_is_refused_and_leaves_no_trial(endpoint: Endpoint) -> None:
    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "bare"}})
    error = error_of(endpoint, {"id": 2, "method": "ask", "params": {"study": "bare"}})
    assert error["data"] == {"kind": "invalid_params", "field": "$.params.search_space"}
    assert "search space" in error["message"]
    listed = reply(endpoint, {"id": 3, "method": "trials", "params": {"study": "bare"}})
    assert listed["result"] == {"trials": []}
    asked = reply(
        endpoint, {"id": 4, "method": "ask", "params": {"study": "bare", "search_space": SPACE}}
    )
    assert set(asked["result"]["trials"][0]["params"]) == {"x"}


def test_parameters_keep_their_json_type_in_every_reply(endpoint: Endpoint) -> None:
    space = {
        "x": {"type": "float", "low": 0, "high": 10},
        "k": {"type": "int", "low": 0, "high": 10},
    }
    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "t", "search_space": space}})
    reply(endpoint, {"id": 2, "method": "enqueue", "params": {"study": "t", "params": {"x": 3}}})
    raw = [
        endpoint.handle(orjson.dumps(f))[0]
        for f in (
            {"id": 3, "method": "ask", "params": {"study": "t"}},
            {
                "id": 4,
                "method": "ask",
                "params": {"study": "t", "fixed_params": {"x": 4, "k": 2.0}},
            },
        )
    ]
    assert b'"x":3.0' in raw[0] and b'"x":4.0,"k":2}' in raw[1]
    for number in (0, 1):
        reply(
            endpoint,
            {"id": 5, "method": "tell", "params": {"study": "t", "number": number, "value": 1.0}},
        )
    (listed,) = endpoint.handle(b'{"id":6,"method":"trials","params":{"study":"t"}}')
    assert b'"x":3.0' in listed and b'"x":4.0' in listed and b'"k":2}' in listed


def test_datetimes_are_utc_with_z(endpoint: Endpoint) -> None:
    import datetime

    reply(endpoint, {"id": 1, "method": "create", "params": {"study": "d", "search_space": SPACE}})
    reply(endpoint, {"id": 2, "method": "ask", "params": {"study": "d"}})
    reply(endpoint, {"id": 3, "method": "tell", "params": {"study": "d", "number": 0, "value": 1}})
    (trial,) = reply(
        endpoint, {"id": 4, "method": "trials", "params": {"study": "d", "datetimes": True}}
    )["result"]["trials"]
    now = datetime.datetime.now(datetime.UTC)
    for key in ("datetime_start", "datetime_complete"):
        assert trial[key].endswith("Z")
        moment = datetime.datetime.fromisoformat(trial[key])
        assert moment.tzinfo is not None and abs((now - moment).total_seconds()) < 60
    (best,) = reply(
        endpoint, {"id": 5, "method": "best", "params": {"study": "d", "datetimes": True}}
    )["result"]["trials"]
    assert best["datetime_start"] == trial["datetime_start"]


def test_internal_error_log_has_no_frame_data(capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    import structlog

    from bridge_worker.io import logs

    @rpc_method("explode")
    def explode(registry: StudyRegistry, params: PingParams) -> PingResult:
        raise RuntimeError("boom")

    ep = build_endpoint(handlers=[explode])
    saved = sys.stdout, sys.stderr
    sink = logs.configure("debug")  # logs leave through the sink's thread: drain before reading
    try:
        answer = reply(ep, b'{"id":1,"method":"explode","meta":"SECRET-IN-FRAME"}')
        assert answer["error"]["data"]["kind"] == "internal_error"
        assert sink.drain(5.0)
        err = capfd.readouterr().err
    finally:
        sys.stdout, sys.stderr = saved
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        logging.captureWarnings(False)
    (line,) = [line for line in err.splitlines() if "internal_error" in line]
    logged = orjson.loads(line)
    assert logged["exception"][0]["exc_type"] == "RuntimeError"
    assert "SECRET-IN-FRAME" not in err
    assert all("locals" not in frame for frame in logged["exception"][0]["frames"])
