"""Replies over ``--max-reply-bytes`` are refused with a way to get the data in parts; ``trials``
pages; `MemoryError` anywhere while answering a frame is an `internal_error` reply (issue 17)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.wire import rpc
from bridge_worker.wire.limits import Limits
from bridge_worker.wire.rpc import Endpoint
from bridge_worker.wiring import build_endpoint

SPACE = {"x": {"type": "float", "low": 0, "high": 1}}


def make(limits: Limits | None = None) -> Endpoint:
    return build_endpoint(limits=limits)


def reply(ep: Endpoint, frame: Any) -> Any:
    (out,) = ep.handle(orjson.dumps(frame))
    return orjson.loads(out)


def study_with_trials(ep: Endpoint, n: int) -> None:
    reply(
        ep,
        {
            "id": 0,
            "method": "create",
            "params": {
                "study": "s",
                "search_space": SPACE,
                "sampler": {"type": "random", "seed": 1},
            },
        },
    )
    for _ in range(n):
        asked = reply(ep, {"id": 0, "method": "ask", "params": {"study": "s"}})
        (trial,) = asked["result"]["trials"]
        reply(
            ep,
            {
                "id": 0,
                "method": "tell",
                "params": {"study": "s", "number": trial["number"], "value": 1.0},
            },
        )


def test_trials_pages_with_offset_and_limit() -> None:
    ep = make()
    study_with_trials(ep, 25)

    def numbers(**page: Any) -> list[int]:
        answer = reply(ep, {"id": 1, "method": "trials", "params": {"study": "s", **page}})
        return [t["number"] for t in answer["result"]["trials"]]

    assert numbers() == list(range(25))
    assert numbers(offset=0, limit=10) == list(range(10))
    assert numbers(offset=20, limit=10) == list(range(20, 25))
    assert numbers(offset=30) == []
    bad = reply(ep, {"id": 1, "method": "trials", "params": {"study": "s", "limit": 0}})
    assert bad["error"]["data"] == {"kind": "invalid_params", "field": "$.params.limit"}


def test_a_reply_over_the_limit_says_how_to_get_it_in_parts() -> None:
    ep = make(Limits(max_reply_bytes=4096))
    study_with_trials(ep, 100)
    answer = reply(ep, {"id": 7, "method": "trials", "params": {"study": "s"}})
    error = answer["error"]
    assert answer["id"] == 7
    assert error["code"] == -32009
    data = error["data"]
    assert data["kind"] == "limit_exceeded" and data["limit"] == "max_reply_bytes"
    assert data["max"] == 4096 and data["value"] > 4096
    assert data["method"] == "trials"
    assert "--max-reply-bytes" in error["message"] and "offset" in error["message"]
    page = data["parts"]
    assert page["method"] == "trials" and page["offset"] == 0
    fetched: list[int] = []
    while True:  # following the advice reads the whole study, every reply under the limit
        (raw,) = ep.handle(
            orjson.dumps(
                {
                    "id": 8,
                    "method": "trials",
                    "params": {"study": "s", "offset": len(fetched), "limit": page["limit"]},
                }
            )
        )
        assert len(raw) <= 4096
        trials = orjson.loads(raw)["result"]["trials"]
        fetched += [t["number"] for t in trials]
        if len(trials) < page["limit"]:
            break
    assert fetched == list(range(100))

    ask = reply(ep, {"id": 9, "method": "ask", "params": {"study": "s", "n": 200}})
    assert ask["error"]["data"]["parts"]["method"] == "ask"
    assert 1 <= ask["error"]["data"]["parts"]["n"] < 200
    export = reply(ep, {"id": 10, "method": "export", "params": {"study": "s"}})
    assert export["error"]["data"]["limit"] == "max_reply_bytes"
    assert "trials" in export["error"]["message"]


def test_worker_flag_and_client_pager(tmp_path: Any) -> None:
    with Worker.spawn(args=["--max-reply-bytes", "1000"]) as w:
        w.create("s", search_space=SPACE, sampler={"type": "random", "seed": 1})
        for _ in range(4):
            for trial in w.ask("s", n=5):
                w.tell("s", trial.number, value=2.0)
        with pytest.raises(WorkerError) as caught:
            w.trials("s")
        assert caught.value.kind == "limit_exceeded"
        assert [t.number for t in w.iter_trials("s", page_size=5)] == list(range(20))
        assert w.ping()


def test_max_reply_bytes_defaults_to_the_frame_limit() -> None:
    from bridge_worker.__main__ import parse_args

    assert parse_args([]).limits.max_reply_bytes == 16 * 1024 * 1024
    assert parse_args(["--max-frame-bytes", "5000"]).limits.max_reply_bytes == 5000
    assert parse_args(["--max-reply-bytes", "7000"]).limits.max_reply_bytes == 7000


def _raise_memory_error(*args: Any, **kwargs: Any) -> Any:
    raise MemoryError


@pytest.mark.parametrize("where", ["handler", "storage", "encoder", "decoder", "batch"])
def test_memory_error_anywhere_is_an_internal_error_reply(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ep = make()
    study_with_trials(ep, 3)
    request: Any = {"id": 5, "method": "trials", "params": {"study": "s"}}
    if where == "handler":
        method = ep.dispatcher.methods["trials"]
        monkeypatch.setitem(
            ep.dispatcher.methods,
            "trials",
            dataclasses.replace(method, handler=_raise_memory_error),
        )
    elif where == "storage":
        storage = ep.dispatcher.registry.storage
        monkeypatch.setattr(storage, "get_all_trials", _raise_memory_error)
    elif where == "encoder":
        monkeypatch.setattr(rpc, "_encode", _raise_memory_error_once(rpc._encode))
    elif where == "decoder":  # the one-pass decoder of well-formed requests, and the careful one
        monkeypatch.setattr(ep, "decode_request", _raise_memory_error)
        monkeypatch.setattr(rpc, "_decode_envelope", _raise_memory_error)
    else:
        request = [request, {"id": 6, "method": "ping"}]
        monkeypatch.setattr(rpc, "_decode_batch", _raise_memory_error)
    answer = reply(ep, request)
    assert answer["error"]["code"] == -32603
    assert answer["error"]["data"]["kind"] == "internal_error"
    assert "MemoryError" in answer["error"]["message"]
    if where in ("handler", "storage", "encoder"):
        assert answer["id"] == 5
    monkeypatch.undo()
    assert reply(ep, {"id": 6, "method": "ping"})["result"] == {"pong": True}


def _raise_memory_error_once(encode: Any) -> Any:
    calls = {"n": 0}

    def encode_failing_first(value: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError
        result: bytes = encode(value)
        return result

    return encode_failing_first
