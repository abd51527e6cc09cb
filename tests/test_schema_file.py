"""The committed JSON Schema is exactly what the msgspec types generate (run ``make schema``)."""

from __future__ import annotations

import orjson

from bridge_worker.dispatch import build_methods
from bridge_worker.handlers import ALL
from bridge_worker.schema_export import SCHEMA_FILE, build_document, render
from tests.conftest import ROOT


def test_committed_schema_is_up_to_date() -> None:
    committed = (ROOT / "protocol" / "schema" / SCHEMA_FILE).read_bytes()
    assert committed == render(), "protocol/schema is stale: run `make schema` and commit"


def test_schema_describes_every_method_and_error() -> None:
    document = build_document()
    assert set(document["methods"]) == set(build_methods(ALL))
    ask = document["$defs"]["AskParams"]
    assert ask["required"] == ["study"]
    assert ask["additionalProperties"] is False
    assert document["errors"]["study_not_found"] == -32001
    assert orjson.loads(render()) == document
