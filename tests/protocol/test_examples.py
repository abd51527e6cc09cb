"""Replay every example conversation in protocol/examples/ against the real worker process.

The same files are replayed by the Elixir client's tests, so they are the shared contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker
from tests.helpers import EXAMPLES, same_frames

CONVERSATIONS = sorted(EXAMPLES.glob("*.jsonl"))
CONVERSATIONS = [p for p in CONVERSATIONS if not p.name.endswith(".requests.jsonl")]


def load(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_frame_comparison_tolerates_only_float_rounding() -> None:
    assert same_frames({"a": [0.1 + 0.2]}, {"a": [0.3]})
    assert not same_frames({"a": [0.31]}, {"a": [0.3]})
    assert not same_frames({"a": 3}, {"a": 3.0})
    assert not same_frames({"a": 1, "b": 2}, {"a": 1})


def test_there_are_conversations() -> None:
    assert len(CONVERSATIONS) >= 2


@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: p.stem)
@pytest.mark.parametrize("framing", ["line", "packet4"])
def test_conversation_replays_exactly(path: Path, framing: str) -> None:
    with Worker.spawn(framing=framing) as worker:
        for step, exchange in enumerate(load(path)):
            if "send_raw" in exchange:
                worker.write_frame(exchange["send_raw"].encode())
            else:
                worker.write_frame(orjson.dumps(exchange["send"]))
            worker.write_frame(b'{"id":"__sync__","method":"ping"}')
            got = []
            while (frame := orjson.loads(worker.read_payload())) != {
                "jsonrpc": "2.0",
                "id": "__sync__",
                "result": {"pong": True},
            }:
                got.append(frame)
            assert same_frames(got, exchange["expect"]), (
                f"{path.name} exchange {step}: {got!r} != {exchange['expect']!r}"
            )


@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: p.stem)
def test_every_conversation_has_its_requests_file(path: Path) -> None:
    """Conversations are recorded from a requests file (scripts/record_examples.py), so they can
    be re-recorded when the protocol grows; the sent frames must match it."""
    requests = [
        orjson.loads(x)
        for x in (EXAMPLES / f"{path.stem}.requests.jsonl").read_bytes().splitlines()
        if x.strip()
    ]
    sent = [{"raw": e["send_raw"]} if "send_raw" in e else e["send"] for e in load(path)]
    assert sent == requests
