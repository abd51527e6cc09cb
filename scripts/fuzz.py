"""``make fuzz``: hostile frames against the real worker process, with a real study interleaved.

One worker process (in-memory storage, a small ``--max-frame-bytes``) receives N generated frames,
pipelined: random bytes (with and without raw newlines), truncated and invalid-UTF-8 frames, deep
nesting, huge numbers and strings, wrong types in every field of every method, unknown methods and
fields, duplicate keys, NaN/Infinity literals, envelope errors, notifications, batches mixing good
and bad entries, and frames at and over the size limit. Between them runs valid traffic on one
study ("valid-main": ask, tell, best, trials, list, ping) whose replies are known in advance.

Every frame carries its expectation: how many frames it makes the worker write, their ids, the
error kinds allowed. Replies come in request order, so a reader thread matches them one by one.
Checked: every output frame decodes into the reply / notification shapes, every request got
exactly one reply with its id (null where the id could not be read), no ``internal_error``, the
valid study's replies are right, RSS stays bounded, and the worker is alive at the end (then
``shutdown``: exit 0, no traceback on stderr).

    make fuzz                                   # 100,000 frames, line framing
    make fuzz FUZZ_ARGS="--frames 20000 --seed 3 --framing packet4"

Inputs of bugs the fuzzer found earlier (``FOUND_BUGS``, each also a regression test in
``tests/protocol/test_fuzz.py``) stay in the mix as the ``regression`` category.
"""

from __future__ import annotations

import argparse
import collections
import json
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from bridge_worker.handlers import ALL
from bridge_worker.wire.dispatch import build_methods
from bridge_worker.wire.errors import ErrorKind

ROOT = Path(__file__).resolve().parent.parent

CODES = {k.kind: k.code for k in ErrorKind}
NON_INTERNAL = frozenset(CODES) - {"internal_error"}
RESULT = "result"
"""Stands for "a result reply" in an expectation's set of allowed outcomes."""
ANY_OUTCOME = NON_INTERNAL | {RESULT}

METHODS = build_methods(ALL)
SENDABLE = sorted(name for name, m in METHODS.items() if not m.ends_session)
"""Every method except those that end the session (``shutdown``: sent once, at the very end)."""

VALID = "valid-main"
POOL = ["g0", "g1", "g\u2603\u0000", "g" * 512]
"""Studies garbage frames may create, ask and delete; never the valid study."""
VALID_SPACE = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "k": {"type": "int", "low": 0, "high": 10},
    "c": {"type": "categorical", "choices": ["a", "b", None, 1.5, True]},
}

FOUND_BUGS = {
    "float-range-overflow": "float distribution low=-1.7e308 high=1.7e308: ask -> internal_error "
    "OverflowError (fixed: invalid_params)",
    "tiny-float-step": "float distribution step=1e-320: create -> internal_error "
    "decimal.InvalidOperation (fixed: invalid_params)",
    "type-error-before-parse-error": "bytes that are not JSON but start like a request of the "
    "wrong type (`5 garbage`, `[1, garbage`) got invalid_request (fixed: parse_error)",
}
TOO_DEEP = frozenset({"parse_error", "limit_exceeded"})
"""What a frame nested deeper than the worker can decode gets."""

# ------------------------------------------------------------------------------------------------
# What the worker may write: strict shapes
# ------------------------------------------------------------------------------------------------


class OutError(Struct, forbid_unknown_fields=True):
    code: int
    message: str
    data: dict[str, Any]


class OutFrame(Struct, forbid_unknown_fields=True):
    jsonrpc: Literal["2.0"]
    id: int | float | str | UnsetType | None = UNSET
    result: Any | UnsetType = UNSET
    error: OutError | UnsetType = UNSET
    method: str | UnsetType = UNSET
    params: Any | UnsetType = UNSET


_out_decoder = msgspec.json.Decoder(OutFrame | list[OutFrame])  # type: ignore[arg-type]


class Mismatch(Exception):
    """The worker wrote something the expectation does not allow."""


def check_shape(frame: OutFrame, in_batch: bool = False) -> None:
    """A reply has an id (maybe null) and exactly one of result/error; a notification has a method
    and params and nothing else; an error's kind is in the closed set and matches its code."""
    is_reply = not isinstance(frame.id, UnsetType)
    if is_reply:
        if not isinstance(frame.method, UnsetType) or not isinstance(frame.params, UnsetType):
            raise Mismatch("a reply with method/params")
        if isinstance(frame.result, UnsetType) == isinstance(frame.error, UnsetType):
            raise Mismatch("a reply needs exactly one of result and error")
    else:
        if in_batch:
            raise Mismatch("a notification inside a batch reply")
        if isinstance(frame.method, UnsetType) or isinstance(frame.params, UnsetType):
            raise Mismatch("neither a reply nor a notification")
        if not isinstance(frame.result, UnsetType) or not isinstance(frame.error, UnsetType):
            raise Mismatch("a notification with result/error")
    if not isinstance(frame.error, UnsetType):
        kind = frame.error.data.get("kind")
        if kind not in CODES or CODES[kind] != frame.error.code:
            raise Mismatch(f"error kind {kind!r} / code {frame.error.code} not in the closed set")


def outcome(frame: OutFrame) -> str:
    return RESULT if isinstance(frame.error, UnsetType) else str(frame.error.data["kind"])


# ------------------------------------------------------------------------------------------------
# Expectations
# ------------------------------------------------------------------------------------------------


@dataclass
class Expect:
    """What one frame makes the worker write.

    ``reply``: one reply, id in ``ids``, outcome in ``allowed``. ``none``: nothing. ``notify``: one
    error notification (kind in ``allowed``). ``batch``: ``notes`` error notifications, then one
    array whose entries match ``entries`` (no array when ``entries`` is empty). ``one``: one frame,
    an object or an array, every id null, every outcome in ``allowed``.
    """

    category: str
    shape: Literal["reply", "none", "notify", "batch", "one"] = "reply"
    ids: tuple[Any, ...] = (None,)
    allowed: frozenset[str] = NON_INTERNAL
    check: Callable[[Any], None] | None = None
    entries: list[Expect] = field(default_factory=list)
    notes: int = 0
    frame: bytes = b""


def reply(
    category: str,
    ids: tuple[Any, ...],
    allowed: frozenset[str] | set[str] | str,
    check: Callable[[Any], None] | None = None,
) -> Expect:
    if isinstance(allowed, str):
        allowed = {allowed}
    return Expect(category, "reply", ids, frozenset(allowed), check)


def match_reply(expect: Expect, frame: OutFrame) -> str:
    if isinstance(frame.id, UnsetType):
        raise Mismatch(f"expected a reply, got notification {frame.method!r}")
    if frame.id not in expect.ids:
        raise Mismatch(f"reply id {frame.id!r}, expected one of {expect.ids!r}")
    got = outcome(frame)
    if got not in expect.allowed:
        detail = "" if got == RESULT else f" ({frame.error.message})"  # type: ignore[union-attr]
        raise Mismatch(f"outcome {got!r}{detail}, expected one of {sorted(expect.allowed)}")
    if expect.check is not None and got == RESULT:
        expect.check(frame.result)
    return got


# ------------------------------------------------------------------------------------------------
# Frame generation
# ------------------------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact JSON of any value (integers of any size, no NaN)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def objective(number: int) -> float:
    """Distinct for every trial number, so the best trial is unambiguous."""
    return float((number * 7919) % 100003) + number / 1e6


class Generator:
    """Yields (payload, expectations) pairs; the payload is one frame's bytes (no framing)."""

    def __init__(self, seed: int, framing: str, max_frame_bytes: int) -> None:
        self.rng = random.Random(seed)
        self.framing = framing
        self.max = max_frame_bytes
        self.max_depth = 5000
        self.unparseable = frozenset({"parse_error"})
        """What bytes that are not JSON get."""
        self.next_id = 1
        # the valid study, as the worker must see it
        self.asked = 0
        self.pending: collections.deque[int] = collections.deque()
        self.told: dict[int, float] = {}

    # -- ids and values ----------------------------------------------------------------------

    def new_id(self) -> int | str:
        self.next_id += 1
        roll = self.rng.random()
        if roll < 0.1:
            return f"s-{self.next_id}-\u00e9\u2603"
        if roll < 0.15:
            return -self.next_id
        if roll < 0.18:
            return 10**25 + self.next_id  # over 64 bits: still echoed as given
        return self.next_id

    def text(self, max_len: int = 12) -> str:
        alphabet = 'abcXYZ019 _-.$"\\/\u00e9\u2603\U0001f600\u0000\u001f\u2028\t'
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, max_len)))

    def scalar(self) -> Any:
        return self.rng.choice(
            [
                None,
                True,
                False,
                0,
                -1,
                1,
                7,
                2**31,
                2**63 - 1,
                -(2**63),
                2**64,
                10**30,
                0.5,
                -0.0,
                1e308,
                -1e308,
                5e-324,
                1e-320,
                self.text(),
                "",
                "NaN",
                "Infinity",
                "-1",
                "1e400",
            ]
        )

    def value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth > 3 or roll < 0.55:
            return self.scalar()
        if roll < 0.78:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(6): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def nested(self, depth: int) -> bytes:
        """JSON text nested ``depth`` levels (built as text: too deep for ``json.dumps``)."""
        opens, closes = [], []
        for _ in range(depth):
            if self.rng.random() < 0.5:
                opens.append(b"[")
                closes.append(b"]")
            else:
                opens.append(b'{"a":')
                closes.append(b"}")
        return b"".join(opens) + dumps(self.scalar()) + b"".join(reversed(closes))

    # -- well-formed params of every method (garbage ones touch only POOL studies) -------------

    def base_params(self, method: str) -> dict[str, Any]:
        study = self.rng.choice(POOL)
        space = {"x": {"type": "float", "low": 0, "high": 1}}
        templates: dict[str, dict[str, Any]] = {
            "create": {
                "study": study,
                "search_space": space,
                "load_if_exists": True,
                "sampler": {"type": "random", "seed": 1},
            },
            "ask": {"study": study, "n": self.rng.randint(1, 3)},
            "tell": {"study": study, "number": self.rng.randint(0, 5), "value": 1.0},
            "import": {
                "snapshot": {
                    "format": "optuna-bridge.snapshot",
                    "version": 1,
                    "checksum": "sha256:" + "0" * 64,
                    "body": {},
                }
            },
        }
        if method in templates:
            return templates[method]
        params: dict[str, Any] = {}
        for f in msgspec.structs.fields(METHODS[method].params_type):
            if f.required:
                params[f.encode_name] = study if f.encode_name == "study" else 0
        return params

    def field_names(self, method: str) -> list[str]:
        return [f.encode_name for f in msgspec.structs.fields(METHODS[method].params_type)]

    def request(self, method: str, params: Any, rid: Any = UNSET) -> dict[str, Any]:
        frame: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if rid is not UNSET:
            frame["id"] = rid
        if params is not UNSET:
            frame["params"] = params
        return frame

    # -- categories ----------------------------------------------------------------------------

    def valid(self) -> tuple[bytes, list[Expect]]:
        """The real study: ask, tell (sometimes as a notification), best, trials, list, ping."""
        roll = self.rng.random()
        rid = self.new_id()
        if roll < 0.35 or not self.pending:
            n = self.rng.randint(1, 3)
            first = self.asked
            self.asked += n
            self.pending.extend(range(first, first + n))

            def check_ask(result: Any) -> None:
                numbers = [t["number"] for t in result["trials"]]
                if numbers != list(range(first, first + n)):
                    raise Mismatch(f"ask numbers {numbers}, expected {first}..{first + n - 1}")
                for t in result["trials"]:
                    p = t["params"]
                    ok = (
                        set(p) == set(VALID_SPACE)
                        and -5 <= p["x"] <= 5
                        and p["k"] in range(11)
                        and p["c"] in ["a", "b", None, 1.5, True]
                    )
                    if not ok:
                        raise Mismatch(f"asked params out of the space: {p}")

            body = self.request("ask", {"study": VALID, "n": n}, rid)
            return dumps(body), [reply("valid", (rid,), RESULT, check_ask)]
        if roll < 0.75:
            number = self.pending.popleft()
            value = objective(number)
            self.told[number] = value
            params = {"study": VALID, "number": number, "value": value}
            if self.rng.random() < 0.15:  # a tell as a notification: no reply at all
                return dumps(self.request("tell", params)), [Expect("valid", "none")]
            expected = {"number": number, "state": "complete", "values": [value]}

            def check_tell(result: Any) -> None:
                if result != expected:
                    raise Mismatch(f"tell result {result}, expected {expected}")

            return dumps(self.request("tell", params, rid)), [
                reply("valid", (rid,), RESULT, check_tell)
            ]
        if roll < 0.8 and self.told:
            number = self.rng.choice(list(self.told))
            params = {"study": VALID, "number": number, "value": 1.0}
            return dumps(self.request("tell", params, rid)), [
                reply("valid", (rid,), "trial_finished")
            ]
        if roll < 0.85:
            params = {"study": VALID, "number": self.asked + 10**6, "value": 1.0}
            return dumps(self.request("tell", params, rid)), [
                reply("valid", (rid,), "trial_not_found")
            ]
        if roll < 0.9:
            if not self.told:
                return dumps(self.request("best", {"study": VALID}, rid)), [
                    reply("valid", (rid,), "no_completed_trials")
                ]
            best_number = min(self.told, key=self.told.__getitem__)
            best_value = self.told[best_number]

            def check_best(result: Any) -> None:
                (trial,) = result["trials"]
                if trial["number"] != best_number or trial["values"] != [best_value]:
                    raise Mismatch(f"best {trial}, expected number {best_number}")

            return dumps(self.request("best", {"study": VALID}, rid)), [
                reply("valid", (rid,), RESULT, check_best)
            ]
        if roll < 0.91:
            told = sorted(self.told)

            def check_trials(result: Any) -> None:
                numbers = [t["number"] for t in result["trials"]]
                if numbers != told:
                    raise Mismatch(f"{len(numbers)} complete trials, expected {len(told)}")

            params = {"study": VALID, "states": ["complete"]}
            return dumps(self.request("trials", params, rid)), [
                reply("valid", (rid,), RESULT, check_trials)
            ]
        if roll < 0.93:
            asked, running = self.asked, len(self.pending)

            def check_list(result: Any) -> None:
                (mine,) = [s for s in result["studies"] if s["study"] == VALID]
                if (mine["n_trials"], mine["n_running"]) != (asked, running):
                    raise Mismatch(f"list {mine}, expected {asked} trials, {running} running")

            return dumps(self.request("list", UNSET, rid)), [
                reply("valid", (rid,), RESULT, check_list)
            ]
        if roll < 0.96:
            return dumps(self.request("ping", UNSET)), [Expect("valid", "none")]

        def check_pong(result: Any) -> None:
            if result != {"pong": True}:
                raise Mismatch(f"ping result {result}")

        return dumps(self.request("ping", {}, rid)), [reply("valid", (rid,), RESULT, check_pong)]

    def gc(self) -> tuple[bytes, list[Expect]]:
        """Delete the garbage studies (a batch), so memory measures leaks, not garbage studies."""
        entries, items = [], []
        for name in POOL:
            rid = self.new_id()
            items.append(self.request("delete", {"study": name}, rid))
            entries.append(reply("gc", (rid,), {RESULT, "study_not_found"}))
        return dumps(items), [Expect("gc", "batch", entries=entries)]

    def wrong_type(self) -> tuple[bytes, list[Expect]]:
        method = self.rng.choice(SENDABLE)
        params = self.base_params(method)
        names = self.field_names(method) or ["study"]
        name = self.rng.choice(names)
        params[name] = self.value()
        if name == "study" and isinstance(params[name], str):  # no studies beyond the pool
            params[name] = self.rng.choice([*POOL, "", "g" * 513])
        rid = self.new_id()
        return dumps(self.request(method, params, rid)), [reply("wrong_type", (rid,), ANY_OUTCOME)]

    def unknown_field(self) -> tuple[bytes, list[Expect]]:
        method = self.rng.choice(SENDABLE)
        params = self.base_params(method)
        params["zz" + self.text(5)] = self.value()
        rid = self.new_id()
        return dumps(self.request(method, params, rid)), [
            reply("unknown_field", (rid,), "invalid_params")
        ]

    def unknown_method(self) -> tuple[bytes, list[Expect]]:
        name = self.rng.choice(
            [
                "Ping",
                "shutdown ",
                " shutdown",
                "SHUTDOWN",
                "ask\u0000",
                "",
                "rpc.discover",
                self.text(20),
                "x" * 200,
            ]
        )
        rid = self.new_id()
        frame = self.request(name, self.value(), rid)
        return dumps(frame), [
            reply("unknown_method", (rid,), {"method_not_found", "invalid_request"})
        ]

    def envelope(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        cases: list[tuple[Any, Any]] = [
            ({"jsonrpc": "1.0", "id": rid, "method": "ping"}, rid),
            ({"jsonrpc": 2.0, "id": rid, "method": "ping"}, rid),
            ({"id": rid}, rid),
            ({"id": rid, "method": 5}, rid),
            ({"id": rid, "method": None}, rid),
            ({"jsonrpc": "2.0", "id": rid, "method": "ping", "params": "x"}, rid),
            ({"id": rid, "method": "ping", "params": None}, rid),
            ({"id": True, "method": "ping"}, None),
            ({"id": False, "method": "ping"}, None),
            ({"id": [rid], "method": "ping"}, None),
            ({"id": {"a": rid}, "method": "ping"}, None),
            (self.scalar(), None),
            ({}, None),
        ]
        body, expected_id = self.rng.choice(cases)
        return dumps(body), [reply("envelope", (expected_id,), "invalid_request")]

    def duplicate_keys(self) -> tuple[bytes, list[Expect]]:
        a, b = self.new_id(), self.new_id()
        frames = [
            (b'{"id":%s,"id":%s,"method":"ping"}' % (dumps(a), dumps(b)), (a, b)),
            (b'{"id":%s,"method":"ping","method":"nope"}' % dumps(a), (a,)),
            (b'{"id":%s,"method":"nope","method":"ping"}' % dumps(a), (a,)),
            (
                b'{"id":%s,"method":"ask","params":{"study":"g0","study":"g1","n":1,"n":2}}'
                % dumps(a),
                (a,),
            ),
            (b'{"id":%s,"method":"ping","params":{},"params":[]}' % dumps(a), (a,)),
        ]
        frame, ids = self.rng.choice(frames)
        return frame, [reply("duplicate_keys", ids, ANY_OUTCOME)]

    def nan_literals(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        literal = self.rng.choice(
            [
                b"NaN",
                b"Infinity",
                b"-Infinity",
                b"nan",
                b"inf",
                b"1e400",
                b"-1e400",
                b"1E+999999999999",
                b"1" + b"0" * 400,
            ]
        )
        template = self.rng.choice(
            [
                b'{"id":%s,"method":"tell","params":{"study":"g0","number":0,"value":%s}}',
                b'{"id":%s,"method":"tell","params":{"study":"g0","number":0,"values":[1,%s]}}',
                b'{"id":%s,"method":"ask","params":{"study":"g0","n":%s}}',
                b'{"id":%s,"method":"create","params":{"study":"g1","search_space":{"x":{"type":'
                b'"float","low":0,"high":%s}}}}',
            ]
        )
        # a literal JSON does not have makes the whole frame unreadable: parse_error (with the
        # id for NaN/Infinity); a number out of range is JSON: invalid_params with the id, or
        # limit_exceeded for an `n` over --max-ask
        return template % (dumps(rid), literal), [
            reply("nan_literals", (rid, None), {"parse_error", "invalid_params", "limit_exceeded"})
        ]

    def huge_number(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        number = self.rng.choice(
            [
                b"1" + b"0" * self.rng.randint(20, 2000),
                b"-9223372036854775809",
                b"18446744073709551616",
                b"1.7976931348623157e308",
                b"4.9e-324",
                b"1e-400",
                b"-0",
                b"0.0000000000000000000001",
            ]
        )
        method = self.rng.choice(SENDABLE)
        params = self.base_params(method)
        name = self.rng.choice(self.field_names(method) or ["study"])
        params[name] = "@@NUMBER@@"
        frame = dumps(self.request(method, params, rid)).replace(b'"@@NUMBER@@"', number)
        return frame, [reply("huge_number", (rid,), ANY_OUTCOME)]

    def huge_string(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        count = self.rng.randint(600, max(601, self.max // 12))  # over the 512 of a name
        text = self.rng.choice(["x", "\u2603", "\\", "\u0000"]) * count
        method = self.rng.choice(SENDABLE)
        params = self.base_params(method)
        name = self.rng.choice(self.field_names(method) or ["study"])
        params[name] = text
        frame = self.request(method, params, rid)
        return dumps(frame), [reply("huge_string", (rid,), ANY_OUTCOME)]

    def deep(self) -> tuple[bytes, list[Expect]]:
        depth = self.rng.choice([2, 10, 100, self.max_depth, self.rng.randint(2, self.max_depth)])
        roll = self.rng.random()
        if roll < 0.3:  # a nested batch: one entry, a list, answered invalid_request
            frame = b"[" * depth + b"]" * depth
            return frame, [Expect("deep", "one", allowed=TOO_DEEP | {"invalid_request"})]
        if roll < 0.45:  # never closed
            return b"[" * depth, [reply("deep", (None,), self.unparseable | TOO_DEEP)]
        rid = self.new_id()
        method = self.rng.choice(SENDABLE)
        params = self.base_params(method)
        name = self.rng.choice([*self.field_names(method), "user_attrs"])
        params[name] = "@@NESTED@@"
        frame = dumps(self.request(method, params, rid)).replace(
            b'"@@NESTED@@"', self.nested(depth)
        )
        return frame, [reply("deep", (rid, None), ANY_OUTCOME)]

    def truncated(self) -> tuple[bytes, list[Expect]]:
        payload, _ = self.wrong_type()
        cut = self.rng.randint(1, len(payload) - 1)
        return payload[:cut], [reply("truncated", (None,), self.unparseable)]

    def invalid_utf8(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        bad = self.rng.choice(
            [
                b"\xff",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80",
                b"\xe2\x82",
                b"\xc0\xaf",
                b"\xfe\xfe",
            ]
        )
        template = self.rng.choice(
            [
                b'{"id":%s,"method":"pi@ng"}',
                b'{"id":%s,"method":"ask","params":{"study":"g@0"}}',
                b'{"id":%s,"method":"create","params":{"study":"g0","user_attrs":{"k@":1}}}',
                b'{"id":%s,"method":"tell","params":{"study":"g0","number":0,"value":1,'
                b'"user_attrs":{"k":"v@"}}}',
                b'{"id":%s,"method":"ask","params":{"study":"g0","fixed_params":{"x":"@"}}}',
            ]
        )
        frame = (template % dumps(rid)).replace(b"@", bad)
        return frame, [
            reply("invalid_utf8", (rid, None), {"parse_error", "invalid_params", "invalid_request"})
        ]

    def random_bytes(self) -> tuple[bytes, list[Expect]]:
        while True:
            data = self.rng.randbytes(self.rng.randint(0, 300))
            if self.framing == "line" and self.rng.random() < 0.7:
                data = data.replace(b"\n", b"")
            pieces = data.split(b"\n") if self.framing == "line" else [data]
            expects = [self.oracle(piece) for piece in pieces]
            if all(e is not None for e in expects):
                return data, [e for e in expects if e is not None]

    def oracle(self, piece: bytes) -> Expect | None:
        """What arbitrary bytes get, from first principles (None: too odd, draw again)."""
        if self.framing == "line" and not piece.strip():
            return Expect("random_bytes", "none")
        try:
            value = msgspec.json.decode(piece)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return reply("random_bytes", (None,), self.unparseable)
        if isinstance(value, dict | list):
            return None
        return reply("random_bytes", (None,), "invalid_request")

    def notification(self) -> tuple[bytes, list[Expect]]:
        roll = self.rng.random()
        if roll < 0.4:
            return dumps(self.request("ping", UNSET)), [Expect("notification", "none")]
        if roll < 0.7:
            frame = self.request("no_such_method", {})
            return dumps(frame), [
                Expect("notification", "notify", allowed=frozenset({"method_not_found"}))
            ]
        frame = self.request("tell", {"study": "g0", "number": "zero"})
        return dumps(frame), [
            Expect("notification", "notify", allowed=frozenset({"invalid_params"}))
        ]

    def batch(self) -> tuple[bytes, list[Expect]]:
        roll = self.rng.random()
        if roll < 0.05:
            return b"[]", [reply("batch", (None,), "invalid_request")]
        if roll < 0.08:
            # over --max-batch: one limit_exceeded per request id, entries without one get
            # nothing (entries are not even read: a bare id keeps the frame small)
            over = [{"id": i} if i % 3 else {} for i in range(1001)]
            return dumps(over), [
                Expect(
                    "batch",
                    "batch",
                    entries=[reply("batch", (i,), "limit_exceeded") for i in range(1001) if i % 3],
                )
            ]
        items: list[Any] = []
        entries: list[Expect] = []
        notes = 0
        for _ in range(self.rng.randint(1, 8)):
            kind = self.rng.random()
            if kind < 0.3:
                payload, (expect,) = self.valid()
                items.append(json.loads(payload))
                if expect.shape == "reply":
                    entries.append(expect)
            elif kind < 0.55:
                payload, (expect,) = self.wrong_type()
                items.append(json.loads(payload))
                entries.append(expect)
            elif kind < 0.7:
                payload, (expect,) = self.notification()
                items.append(json.loads(payload))
                notes += expect.shape == "notify"
            elif kind < 0.85:
                items.append(self.rng.choice([1, "x", None, True, [], [1], {}]))
                entries.append(reply("batch", (None,), "invalid_request"))
            else:
                payload, (expect,) = self.envelope()
                body = json.loads(payload)
                if not isinstance(body, dict):
                    expect = reply("batch", (None,), "invalid_request")
                items.append(body)
                entries.append(expect)
        return dumps(items), [Expect("batch", "batch", entries=entries, notes=notes)]

    def size_limit(self) -> tuple[bytes, list[Expect]]:
        rid = self.new_id()
        core = dumps(self.request("ping", {}, rid))
        over = self.rng.choice([0, 1, 2, self.max, 3 * self.max])
        pad = self.max - len(core) + over
        frame = core + b" " * pad
        if over == 0:
            return frame, [reply("size_limit", (rid,), RESULT)]
        return frame, [reply("size_limit", (None,), "frame_too_large")]

    def blank(self) -> tuple[bytes, list[Expect]]:
        if self.framing != "line":
            return b"", [reply("blank", (None,), "parse_error")]
        return self.rng.choice([b"", b" ", b"\t", b"\r", b" \r\t "]), [Expect("blank", "none")]

    def regression(self) -> tuple[bytes, list[Expect]]:
        """Inputs of the bugs in ``FOUND_BUGS``: what the fixed worker answers."""
        rid = self.new_id()
        case = self.rng.randrange(2)
        if case == 0:
            study, space = "g0", {"x": {"type": "float", "low": -1.7e308, "high": 1.7e308}}
            create_id = self.new_id()
            create = self.request(
                "create", {"study": study, "search_space": space, "load_if_exists": True}, create_id
            )
            ask = self.request("ask", {"study": study, "search_space": space}, rid)
            return dumps([create, ask]), [
                Expect(
                    "regression",
                    "batch",
                    entries=[
                        reply("regression", (create_id,), {RESULT, "invalid_params"}),
                        reply("regression", (rid,), {RESULT, "invalid_params", "study_not_found"}),
                    ],
                )
            ]
        space = {"x": {"type": "float", "low": 0, "high": 1, "step": 1e-320}}
        frame = self.request("create", {"study": "g1", "search_space": space}, rid)
        return dumps(frame), [reply("regression", (rid,), {RESULT, "invalid_params"})]

    def semantic(self) -> tuple[bytes, list[Expect]]:
        """Well-typed frames Optuna cannot carry out on a pool study: per-ask spaces that
        conflict with earlier trials, grids and CMA-ES ``x0`` that cannot fill a trial, enqueued
        points a grid cannot complete, names and numbers a storage cannot hold. Each used to be
        an ``internal_error`` (and a stranded RUNNING trial); now any outcome but that."""
        study = self.rng.choice(POOL)
        names = ["x", "y", "c", "x\u0000", "k" * 600]
        kinds = [
            {"type": "float", "low": 0, "high": 1},
            {"type": "float", "low": 0.1, "high": 1, "log": True},
            {"type": "int", "low": 0, "high": 3},
            {"type": "categorical", "choices": ["a", "b"]},
            {"type": "categorical", "choices": ["a", "z", None]},
        ]

        def space(k: int) -> dict[str, Any]:
            return {self.rng.choice(names[:3]): self.rng.choice(kinds) for _ in range(k)}

        def value() -> Any:
            return self.rng.choice(["a", "z", 0.5, 2, None, True, "s", 7.0, 2**63])

        roll = self.rng.randrange(8)
        params: dict[str, Any]
        if roll == 0:
            method = "create"
            sampler = self.rng.choice(
                [
                    {
                        "type": "grid",
                        "search_space": {
                            n: [value(), value()] for n in self.rng.sample(names[:3], 2)
                        },
                    },
                    {"type": "cmaes", "x0": {n: value() for n in self.rng.sample(names[:3], 2)}},
                    {"type": "random", "seed": 1},
                ]
            )
            params = {
                "study": study,
                "search_space": space(2),
                "sampler": sampler,
                "load_if_exists": self.rng.random() < 0.5,
            }
        elif roll in (1, 2, 3):
            method = "ask"
            params = {
                "study": study,
                "search_space": space(self.rng.randint(1, 3)),
                "n": self.rng.randint(1, 3),
            }
            if self.rng.random() < 0.3:
                params["fixed_params"] = {self.rng.choice(names[:3]): value()}
            if self.rng.random() < 0.2:
                params["lease_s"] = 60.0
        elif roll == 4:
            method = "enqueue"
            params = {"study": study, "params": {self.rng.choice(names[:3]): value()}}
        elif roll == 5:
            method = "report"
            params = {
                "study": study,
                "number": self.rng.randint(0, 5),
                "step": self.rng.choice([0, 2**31, 2**63, 2**64 - 1]),
                "value": 1.0,
            }
        elif roll == 6:
            method = "set_attrs"
            params = {"study": study, "user_attrs": {self.rng.choice(names): value()}}
            if self.rng.random() < 0.5:
                params["number"] = self.rng.choice([0, 1, 2**63, 2**64 - 1])
        else:
            method = "add_trials"
            trial = {
                "params": {self.rng.choice(names[:3]): value()},
                "value": 1.0,
                "intermediate_values": {str(self.rng.choice([1, 2**31, 2**63])): 1.0},
                "user_attrs": {self.rng.choice(names): 1},
            }
            params = {"study": study, "trials": [trial]}
        rid = self.new_id()
        return dumps(self.request(method, params, rid)), [reply("semantic", (rid,), ANY_OUTCOME)]

    WEIGHTS: dict[str, float] = {
        "valid": 28,
        "wrong_type": 16,
        "random_bytes": 8,
        "truncated": 6,
        "invalid_utf8": 5,
        "batch": 7,
        "envelope": 5,
        "unknown_field": 4,
        "unknown_method": 3,
        "duplicate_keys": 3,
        "nan_literals": 3,
        "huge_number": 3,
        "huge_string": 1,
        "deep": 2,
        "notification": 3,
        "size_limit": 1,
        "blank": 1,
        "regression": 0.3,
        "semantic": 6,
    }

    def frames(self, n: int) -> Iterator[tuple[bytes, list[Expect]]]:
        rid = self.new_id()
        create = {
            "study": VALID,
            "search_space": VALID_SPACE,
            "sampler": {"type": "random", "seed": 7},
        }
        yield dumps(self.request("create", create, rid)), [reply("valid", (rid,), RESULT)]
        weights = dict(self.WEIGHTS)
        names, cum = list(weights), list(weights.values())
        for i in range(n):
            if i % 2000 == 1999:
                yield self.gc()
                continue
            category = self.rng.choices(names, cum)[0]
            yield getattr(self, category)()


# ------------------------------------------------------------------------------------------------
# Running it
# ------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Summary:
    frames: int = 0
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    replies: int = 0
    notifications: int = 0
    failures: list[str] = field(default_factory=list)
    crashes: int = 0
    exit_code: int | None = None
    stderr_tracebacks: int = 0
    rss_kib: list[tuple[int, int]] = field(default_factory=list)
    valid_trials: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and self.crashes == 0 and self.exit_code == 0

    def rss_growth_kib(self) -> int:
        """RSS at the end minus RSS after the first tenth of the frames (warm-up)."""
        if len(self.rss_kib) < 2:
            return 0
        start = next(
            (r for done, r in self.rss_kib if done >= self.frames // 10), self.rss_kib[0][1]
        )
        return self.rss_kib[-1][1] - start

    def report(self) -> str:
        lines = [
            f"fuzz: {self.frames} frames in {self.seconds:.1f} s "
            f"({self.frames / max(self.seconds, 1e-9):,.0f} frames/s)"
        ]
        lines.append(
            "sent by category: " + ", ".join(f"{k} {v}" for k, v in self.sent.most_common())
        )
        lines.append(f"replies: {self.replies} (+ {self.notifications} error notifications)")
        lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common()))
        if self.rss_kib:
            rss = [r for _, r in self.rss_kib]
            lines.append(
                f"RSS: start {rss[0] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB, "
                f"end {rss[-1] / 1024:.1f} MiB; growth after warm-up "
                f"{self.rss_growth_kib() / 1024:.1f} MiB for {self.valid_trials} "
                "stored trials"
            )
        lines.append(
            f"crashes: {self.crashes}; exit code {self.exit_code}; "
            f"tracebacks on stderr: {self.stderr_tracebacks}"
        )
        lines.append(f"failures: {len(self.failures)}")
        lines.extend(f"  {f}" for f in self.failures[:10])
        return "\n".join(lines)


def frame_bytes(payload: bytes, framing: str) -> bytes:
    if framing == "packet4":
        return len(payload).to_bytes(4, "big") + payload
    return payload + b"\n"


def run(
    frames: int = 100_000,
    seed: int = 0,
    framing: str = "line",
    max_frame_bytes: int = 64 * 1024,
    rss_limit_mib: float = 64.0,
    python: str = sys.executable,
    progress: bool = False,
) -> Summary:
    """Drive one real worker with ``frames`` generated frames; see the module docstring."""
    gen = Generator(seed, framing, max_frame_bytes)
    summary = Summary(frames=frames)
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "bridge_worker",
            "--framing",
            framing,
            "--log-level",
            "warning",
            "--max-frame-bytes",
            str(max_frame_bytes),
            # Small frames in, but replies as large as a valid frame makes them: the reply
            # limit has its own tests (tests/protocol/test_reply_limit.py), the fuzzer judges
            # input handling.
            "--max-reply-bytes",
            str(16 * 1024 * 1024),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    expects: queue.Queue[Expect | None] = queue.Queue()
    stderr_chunks: list[bytes] = []
    done_count = [0]
    started = time.perf_counter()

    def read_payload() -> bytes | None:
        if framing == "packet4":
            header = stdout.read(4)
            if len(header) < 4:
                return None
            body = stdout.read(int.from_bytes(header, "big"))
            if len(body) != int.from_bytes(header, "big"):
                raise Mismatch("half a frame on stdout")
            return body
        line = stdout.readline()
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise Mismatch("half a frame on stdout (no newline before EOF)")
        return line

    def next_frame() -> OutFrame | list[OutFrame]:
        payload = read_payload()
        if payload is None:
            raise Mismatch("the worker closed stdout")
        try:
            return _out_decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Mismatch(f"stdout frame not of the schema: {exc}: {payload[:200]!r}") from None

    def single(expect: Expect) -> OutFrame:
        frame = next_frame()
        if isinstance(frame, list):
            raise Mismatch(f"an array where {expect.shape} was expected")
        check_shape(frame)
        return frame

    def consume(expect: Expect) -> None:
        if expect.shape == "none":
            return
        if expect.shape in ("notify", "batch"):
            for _ in range(1 if expect.shape == "notify" else expect.notes):
                note = single(expect)
                if note.method != "error":
                    raise Mismatch(f"expected an error notification, got {note}")
                kind = note.params["error"]["data"]["kind"]
                if expect.shape == "notify" and kind not in expect.allowed:
                    raise Mismatch(f"error notification {kind!r}, expected {expect.allowed}")
                if kind == "internal_error":
                    raise Mismatch("internal_error notification")
                summary.notifications += 1
                summary.outcomes[kind] += 1
            if expect.shape == "notify" or not expect.entries:
                return
            array = next_frame()
            if not isinstance(array, list) or len(array) != len(expect.entries):
                raise Mismatch(f"expected a batch reply of {len(expect.entries)} entries")
            for entry, item in zip(expect.entries, array, strict=True):
                check_shape(item, in_batch=True)
                summary.outcomes[match_reply(entry, item)] += 1
            summary.replies += 1
            return
        if expect.shape == "one":
            frame = next_frame()
            items = frame if isinstance(frame, list) else [frame]
            for item in items:
                check_shape(item, in_batch=isinstance(frame, list))
                if item.id is not None or outcome(item) not in expect.allowed:
                    raise Mismatch(f"unexpected {item}")
                summary.outcomes[outcome(item)] += 1
            summary.replies += 1
            return
        summary.outcomes[match_reply(expect, single(expect))] += 1
        summary.replies += 1

    def reader() -> None:
        try:
            ready = single(Expect("ready", "notify"))
            if ready.method != "ready":
                raise Mismatch("first frame is not ready")
            while (expect := expects.get()) is not None:
                try:
                    consume(expect)
                except Mismatch as exc:
                    summary.failures.append(
                        f"[{expect.category}] {exc}; frame {expect.frame[:160]!r}"
                    )
                    return
                done_count[0] += 1
        except Mismatch as exc:
            summary.failures.append(str(exc))
        finally:
            stdout.read()  # drain whatever is left so the worker never blocks on us

    def sampler() -> None:
        while proc.poll() is None:
            rss = rss_kib(proc.pid)
            if rss is not None:
                summary.rss_kib.append((done_count[0], rss))
            time.sleep(0.05)

    threads = [
        threading.Thread(target=reader, daemon=True),
        threading.Thread(target=sampler, daemon=True),
        threading.Thread(target=lambda: stderr_chunks.append(stderr.read()), daemon=True),
    ]
    for t in threads:
        t.start()
    buffer = bytearray()
    try:
        for i, (payload, frame_expects) in enumerate(gen.frames(frames)):
            for e in frame_expects:
                e.frame = payload
                summary.sent[e.category] += 1
                expects.put(e)
            buffer += frame_bytes(payload, framing)
            if len(buffer) > 32 * 1024:
                stdin.write(buffer)
                stdin.flush()
                buffer.clear()
            if progress and i % 10_000 == 0:
                print(f"  {i} frames sent, {done_count[0]} answered", file=sys.stderr)
        # the end: the worker is still alive, its study is right, then shutdown
        for payload, frame_expects in (gen.valid(), gen.valid()):
            for e in frame_expects:
                e.frame = payload
                expects.put(e)
            buffer += frame_bytes(payload, framing)
        shutdown_id = gen.new_id()
        expects.put(reply("shutdown", (shutdown_id,), RESULT))
        buffer += frame_bytes(
            dumps({"jsonrpc": "2.0", "id": shutdown_id, "method": "shutdown"}), framing
        )
        expects.put(None)
        stdin.write(buffer)
        stdin.flush()
        stdin.close()
    except BrokenPipeError:
        summary.crashes += 1
        expects.put(None)
    threads[0].join(timeout=120)
    try:
        summary.exit_code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        summary.exit_code = proc.wait()
        summary.failures.append("the worker did not exit after shutdown")
    for t in threads[1:]:
        t.join(timeout=10)
    summary.seconds = time.perf_counter() - started
    err = b"".join(stderr_chunks)
    summary.stderr_tracebacks = err.count(b"Traceback")
    if summary.exit_code != 0 or (summary.failures and proc.returncode not in (0, None)):
        summary.crashes += 1
        summary.failures.append(f"exit code {summary.exit_code}; stderr tail: {err[-600:]!r}")
    if b"internal_error" in err:
        summary.failures.append("internal_error logged on stderr")
    summary.valid_trials = gen.asked
    allowed_kib = rss_limit_mib * 1024 + 8 * gen.asked
    if summary.rss_growth_kib() > allowed_kib:
        summary.failures.append(
            f"RSS grew {summary.rss_growth_kib() / 1024:.1f} MiB after warm-up "
            f"(allowed {allowed_kib / 1024:.1f} MiB for {gen.asked} stored trials)"
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--framing",
        choices=("line", "packet4", "both"),
        default="both",
        help="both: nine tenths of the frames line-framed, one tenth packet4",
    )
    parser.add_argument("--max-frame-bytes", type=int, default=64 * 1024)
    parser.add_argument(
        "--rss-limit-mib",
        type=float,
        default=64.0,
        help="allowed RSS growth after warm-up beyond 8 KiB per stored trial",
    )
    args = parser.parse_args(argv)
    runs = (
        [("line", args.frames - args.frames // 10), ("packet4", args.frames // 10)]
        if args.framing == "both"
        else [(args.framing, args.frames)]
    )
    ok = True
    for framing, n in runs:
        print(f"== {framing} framing, seed {args.seed}, max frame {args.max_frame_bytes} bytes")
        summary = run(
            n,
            args.seed,
            framing,
            args.max_frame_bytes,
            rss_limit_mib=args.rss_limit_mib,
            progress=True,
        )
        print(summary.report(), flush=True)
        ok = ok and summary.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
