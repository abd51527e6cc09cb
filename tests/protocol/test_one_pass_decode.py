"""A well-formed request is decoded in one pass (one struct per method, told apart by
``method``; issue 24); anything that decoder refuses takes the careful path (envelope, then the
method's params), which words the error. Both must answer every frame with the same bytes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bridge_worker.wire.limits import Limits
from bridge_worker.wiring import build_endpoint

SPACE = b'{"x":{"type":"float","low":0,"high":1},"c":{"type":"categorical","choices":["a","b"]}}'
NESTED = b"[" * 30 + b"1" + b"]" * 30

FRAMES = [
    b'{"id":1,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":"a","method":"ping","params":{}}',
    b'{"id":null,"method":"ping","params":[]}',
    b'{"id":1e2,"method":"ping"}',
    b'{"id":-0,"method":"ping","extra":{"ignored":[1,2]}}',
    b'{"id":true,"method":"ping"}',
    b'{"id":{},"method":"ping"}',
    b'{"id":[1],"method":"ping"}',
    b'{"jsonrpc":"1.0","id":2,"method":"ping"}',
    b'{"id":3,"method":"ping","params":null}',
    b'{"id":3,"method":"ping","params":"x"}',
    b'{"id":3,"method":"ping","params":[1]}',
    b'{"id":3,"method":"ping","params":{"x":1}}',
    b'{"id":4,"method":"nope"}',
    b'{"id":4}',
    b'{"id":4,"method":5}',
    b'{"method":"ping"}',
    b'{"method":"nope"}',
    b'{"method":"ask","params":{"study":"missing"}}',
    b'{"id":5,"method":"create","params":{"study":"s","search_space":'
    + SPACE
    + b',"sampler":{"type":"random","seed":3}}}',
    b'{"id":6,"method":"create","params":{"study":"s"}}',
    b'{"id":7,"method":"create"}',
    b'{"id":8,"method":"ask","params":{"study":"s","n":2}}',
    b'{"id":9,"method":"ask","params":{"study":"s","n":"2"}}',
    b'{"id":10,"method":"ask","params":{"study":"s","unknown":1}}',
    b'{"id":11,"method":"tell","params":{"study":"s","number":0,"value":0.5}}',
    b'{"id":12,"method":"tell","params":{"study":"s","number":0,"value":0.5}}',
    b'{"id":13,"method":"tell","params":{"study":"s","number":1,"values":[1,2]}}',
    b'{"id":14,"method":"tell","params":{"study":"s","number":1,"value":NaN}}',
    b'{"id":15,"method":"set_attrs","params":{"study":"s","user_attrs":{"deep":' + NESTED + b"}}}",
    b'{"id":16,"method":"set_attrs","params":{"study":"s","user_attrs":{"deep":'
    + b"[" * 70
    + b"]" * 70
    + b"}}}",
    b' {"id":17,"method":"ping"}',
    b'\xef\xbb\xbf{"id":18,"method":"ping"}',
    b'{"id":"\xc3\xa9","method":"ping"}',
    b'{"id":"\xff","method":"ping"}',
    b'{"id":19,"method":"ping"',
    b'{"id":20,"method":"ping"}{',
    b'[{"id":21,"method":"ping"},{"id":22,"method":"ask","params":{"study":"s"}}]',
    b'{"id":23,"method":"trials","params":{"study":"s"}}',
    # duplicate members: the last one counts, on both paths
    b'{"id":25,"method":"ping","method":"nope"}',
    b'{"id":26,"method":"nope","method":"ping"}',
    b'{"id":27,"method":"ping","params":{},"params":{"x":1}}',
    b'{"id":28,"id":true,"method":"ping"}',
    b'{"id":true,"id":29,"method":"ping"}',
    b'{"id":30,"method":"ask","params":{"study":"s"},"method":"ping"}',
    b'{"method":"ping","id":31,"jsonrpc":"2.0","jsonrpc":"1.0"}',
    b'{"id":24,"method":"shutdown"}',
]


def _careful_only(request: Any) -> Any:
    raise msgspec.ValidationError("refused: take the careful path")


@pytest.mark.parametrize("strict", [False, True])
def test_both_paths_answer_every_frame_with_the_same_bytes(strict: bool) -> None:
    limits = Limits(max_depth=64)
    one_pass = build_endpoint(limits=limits, strict=strict)
    careful = build_endpoint(limits=limits, strict=strict)
    careful.decode_request = _careful_only
    taken = 0
    real = one_pass.decode_request

    def counted(request: Any) -> Any:
        nonlocal taken
        decoded = real(request)
        taken += 1
        return decoded

    one_pass.decode_request = counted
    for frame in FRAMES:
        assert one_pass.handle(frame) == careful.handle(frame), frame
        assert one_pass.closing == careful.closing
    assert taken >= 10  # the one-pass decoder did answer the well-formed ones
