"""Where Optuna's private API may be touched: in bridge_worker/studies/study.py, never in a handler.

A handler reads like the protocol (decode, call one domain method, return a result struct); an
Optuna upgrade that moves a private name must be fixed in one named module, not in every
handler. Handlers are also independent of each other: none imports another.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

HANDLERS = sorted(
    p for p in (ROOT / "bridge_worker" / "handlers").glob("*.py") if p.name != "__init__.py"
)
PRIVATE_ATTRIBUTE = re.compile(r"\._[A-Za-z][A-Za-z0-9_]*")
"""``study._storage``, ``trial._trial_id``, ``optuna.study._tell``: a private name after a dot
(``__dunder__`` names such as ``fn.__rpc_method__`` are not private API)."""


def test_there_are_handlers() -> None:
    assert len(HANDLERS) >= 5


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.name)
def test_handler_names_no_private_optuna_attribute(path: Path) -> None:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            parts = node.module.split(".")
            if parts[0] == "optuna" and any(p.startswith("_") for p in parts):
                found.append(f"line {node.lineno}: from {node.module}")
            if parts[0] == "optuna":
                found += [
                    f"line {node.lineno}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert not found, (
        f"{path.name} touches private API (move it into bridge_worker/studies/study.py)"
    )


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.name)
def test_handler_text_has_no_private_attribute(path: Path) -> None:
    """The same rule on the text, so a private name in a string given to getattr is caught."""
    code = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    hits = [m.group(0) for m in PRIVATE_ATTRIBUTE.finditer(code)]
    assert not hits, f"{path.name}: {hits}"


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.name)
def test_handler_imports_no_other_handler(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("bridge_worker.handlers")
    ]
    imported += [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("bridge_worker.handlers")
    ]
    assert not imported, f"{path.name} imports {imported}"
