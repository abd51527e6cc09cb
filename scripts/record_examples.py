"""Record example conversations: run each ``protocol/examples/*.requests.jsonl`` through a real
worker and write ``protocol/examples/NAME.jsonl`` with the replies the worker gave.

Each line of a requests file is one frame to send: a JSON value (sent compactly) or, to send bytes
that are not JSON, an object ``{"raw": "text"}``. Each line of a conversation file is
``{"send": <frame>, "expect": [<frames the worker writes back>]}`` (``"send_raw"`` instead of
``"send"`` for raw text). Review a recorded conversation before committing it: the tests then
replay it against the real worker and require exactly these replies.

    python scripts/record_examples.py            # re-record all
    python scripts/record_examples.py ask_tell   # one
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from bridge_worker.client import Worker

EXAMPLES = Path(__file__).resolve().parent.parent / "protocol" / "examples"


def record(name: str) -> None:
    source = EXAMPLES / f"{name}.requests.jsonl"
    lines = [orjson.loads(line) for line in source.read_bytes().splitlines() if line.strip()]
    out = []
    with Worker.spawn() as worker:
        for item in lines:
            if isinstance(item, dict) and set(item) == {"raw"}:
                worker.write_frame(item["raw"].encode())
                entry = {"send_raw": item["raw"]}
            else:
                worker.write_frame(orjson.dumps(item))
                entry = {"send": item}
            worker.write_frame(b'{"id":"__sync__","method":"ping"}')
            replies = []
            while True:
                frame = orjson.loads(worker.read_payload())
                if isinstance(frame, dict) and frame.get("id") == "__sync__":
                    break
                replies.append(frame)
            entry["expect"] = replies
            out.append(orjson.dumps(entry))
    (EXAMPLES / f"{name}.jsonl").write_bytes(b"\n".join(out) + b"\n")
    print(f"recorded {name}: {len(out)} exchanges", file=sys.stderr)


def main() -> None:
    names = sys.argv[1:] or sorted(
        p.name.removesuffix(".requests.jsonl") for p in EXAMPLES.glob("*.requests.jsonl")
    )
    for name in names:
        record(name)


if __name__ == "__main__":
    main()
