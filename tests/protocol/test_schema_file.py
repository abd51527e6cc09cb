"""The committed JSON Schema is exactly what the msgspec types generate (run ``make schema``)."""

from __future__ import annotations

import orjson
import pytest

from bridge_worker import schema_export
from bridge_worker.handlers import ALL
from bridge_worker.schema_export import SCHEMA_FILE, build_document, render
from bridge_worker.wire import schema
from bridge_worker.wire.dispatch import build_methods
from tests.helpers import ROOT


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


def test_descriptions_do_not_depend_on_how_msgspec_copies_docstrings() -> None:
    """msgspec 0.22 keeps docstring indentation, 0.23 dedents: the document must be the same."""
    descriptions = [
        d["description"] for d in build_document()["$defs"].values() if "description" in d
    ]
    assert any("\n" in d for d in descriptions)
    assert not [d for d in descriptions if "\n " in d]


def test_a_changed_type_makes_the_committed_schema_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normalizing descriptions must not blind the staleness check to a real change of a type."""

    class ReadyParams(schema.ReadyParams, kw_only=True):
        extra_field: int = 0

    monkeypatch.setitem(schema_export._FRAMES, "ready_params", ReadyParams)
    committed = (ROOT / "protocol" / "schema" / SCHEMA_FILE).read_bytes()
    assert committed != render()
