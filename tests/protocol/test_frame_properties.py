"""Property tests: no bytes and no JSON value can make the endpoint raise or write a bad frame.

Frames are encoded with the stdlib json module because it writes integers of any size (orjson
and msgspec stop at 64 bits), and a parent may send those.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_worker.wire.rpc import Endpoint
from tests.helpers import make_endpoint

ENDPOINT: Endpoint = make_endpoint()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    ["ping", "create", "ask", "tell", "best", "trials", "list", "delete", "shutdown", "nope", ""]
)
requests = st.fixed_dictionaries(
    {"method": methods},
    optional={
        "id": st.integers() | st.text(max_size=5) | json_values,
        "params": json_values,
        "jsonrpc": st.sampled_from(["2.0", "1.0"]),
    },
)


def check_output(out: list[bytes]) -> None:
    for payload in out:
        assert b"\n" not in payload
        frame: Any = orjson.loads(payload)
        for item in frame if isinstance(frame, list) else [frame]:
            assert item["jsonrpc"] == "2.0"
            if "error" in item:
                assert isinstance(item["error"]["code"], int)
                assert isinstance(item["error"]["data"]["kind"], str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_output(ENDPOINT.handle(data))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_never_raises(value: Any) -> None:
    check_output(ENDPOINT.handle(json.dumps(value).encode()))


@settings(max_examples=400, deadline=None)
@given(st.one_of(requests, st.lists(requests, max_size=4)))
def test_random_requests_never_raise_and_requests_get_one_reply(request: Any) -> None:
    ENDPOINT.closing = False
    out = ENDPOINT.handle(json.dumps(request).encode())
    check_output(out)
    single = not isinstance(request, list)
    if single and "id" in request and out:
        assert out[-1].startswith(b'{"jsonrpc":"2.0","id":')
