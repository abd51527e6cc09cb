"""The protocol's JSON Schema document, generated from the msgspec types in :mod:`schema`.

One document describes every frame shape and, per method, its params and result, so a parent in
any language can validate against the same types the worker decodes with. ``make schema`` writes
it to ``protocol/schema/``; a test fails when the committed file differs from a fresh generation.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import orjson

from bridge_worker.handlers import ALL
from bridge_worker.wire import schema
from bridge_worker.wire.dispatch import build_methods
from bridge_worker.wire.distribution import SCHEMA_FILE
from bridge_worker.wire.errors import ErrorKind

_FRAMES: dict[str, Any] = {
    "request": schema.RequestEnvelope,
    "result_reply": schema.ResultReply,
    "error_reply": schema.ErrorReply,
    "notification": schema.Notification,
    "error_notification_params": schema.ErrorNotificationParams,
    "ready_params": schema.ReadyParams,
}


def build_document() -> dict[str, Any]:
    methods = build_methods(ALL)
    names = sorted(methods)
    types: list[Any] = list(_FRAMES.values())
    for name in names:
        types += [methods[name].params_type, methods[name].result_type]
    refs, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    frame_refs = dict(zip(_FRAMES, refs[: len(_FRAMES)], strict=True))
    method_refs = refs[len(_FRAMES) :]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://optuna-bridge/protocol/1/" + SCHEMA_FILE,
        "title": f"optuna-bridge protocol {schema.PROTOCOL_VERSION}",
        "frames": frame_refs,
        "methods": {
            name: {"params": method_refs[2 * i], "result": method_refs[2 * i + 1]}
            for i, name in enumerate(names)
        },
        "errors": {kind.kind: kind.code for kind in ErrorKind},
        "$defs": _normalized(components),
    }


def _normalized(node: Any) -> Any:
    """Docstring descriptions as :func:`inspect.cleandoc` leaves them. msgspec copies docstrings
    verbatim up to 0.22 and dedents them from 0.23 on; cleaning them here makes the document
    depend on our types only, never on which msgspec the lock or a user's pins chose."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _normalized(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_normalized(item) for item in node]
    return node


def render() -> bytes:
    """Canonical bytes: sorted keys, two-space indent, trailing newline (stable diffs)."""
    return orjson.dumps(build_document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
