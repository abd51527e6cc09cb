"""The package's layering, written down once and checked on every run.

Each module of ``bridge_worker`` belongs to a layer (its subpackage; the modules directly in
``bridge_worker/`` are the application that assembles them). A layer may import only the layers
listed for it: the frame's path reads bottom-up (``wire`` -> ``storage`` -> ``studies`` ->
``handlers``; ``io`` drives the wire's endpoint and knows nothing of studies), and a lower layer
that imports a higher one fails here, naming the line. Imports are read with ``ast`` from every
module, including imports deferred into functions and those under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bridge_worker"

MAY_IMPORT: dict[str, frozenset[str]] = {
    "wire": frozenset({"wire"}),
    "storage": frozenset({"wire", "storage"}),
    "studies": frozenset({"wire", "storage", "studies"}),
    "handlers": frozenset({"wire", "studies", "handlers"}),
    "io": frozenset({"wire", "io"}),
    "app": frozenset({"wire", "storage", "studies", "handlers", "io", "app"}),
}
"""Layer -> the layers its modules may import. ``app`` is ``bridge_worker/*.py`` (``__main__``,
``wiring``, ``config``, the client, the proxy); the root package's ``__version__`` may be imported
by every layer. Handlers never touch the storage directly (they go through the studies) and
never import each other (``tests/protocol/test_handler_boundaries.py``; their package lists
them all)."""

MODULES = sorted(PACKAGE.rglob("*.py"))


def _layer(module: str) -> str:
    """``bridge_worker.wire.rpc`` -> ``wire``; ``bridge_worker.wiring`` -> ``app``."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    return _imports_of(path.read_text(), _module_name(path), path.name == "__init__.py")


def _imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every ``bridge_worker`` module the source imports (relative imports
    resolved; ``from bridge_worker.studies import registry`` is the module it names)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base == "bridge_worker" or (PACKAGE / base.partition(".")[2]).is_dir():
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "bridge_worker"]


def test_every_subpackage_has_a_row() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(MAY_IMPORT), f"add {subpackages - set(MAY_IMPORT)} to MAY_IMPORT"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_or_lower_layers(path: Path) -> None:
    layer = _layer(_module_name(path))
    if path == PACKAGE / "__init__.py":
        return  # the root: ``__version__`` and the lazy ``Worker`` (the client, app layer)
    wrong = [
        f"line {line}: {name} ({_layer(name)})"
        for line, name in _imports(path)
        if name not in ("bridge_worker", "bridge_worker.__version__")
        and _layer(name) not in MAY_IMPORT[layer]
    ]
    assert not wrong, f"{layer} may import only {sorted(MAY_IMPORT[layer])}: {wrong}"


def test_the_check_sees_a_wrong_import() -> None:
    """The rule itself: a wire module importing the registry (relatively, or by a deferred
    import inside a function) is found and is outside what the wire may import."""
    source = "from ..studies import registry\ndef f():\n    import bridge_worker.io.server\n"
    found = _imports_of(source, "bridge_worker.wire.dispatch", is_package=False)
    assert found == [(1, "bridge_worker.studies.registry"), (3, "bridge_worker.io.server")]
    assert {_layer(name) for _, name in found} == {"studies", "io"}
    assert not {"studies", "io"} & MAY_IMPORT["wire"]


def test_readme_layout_has_one_row_per_subpackage() -> None:
    """README's layout table says what each package owns: a new subpackage needs its row."""
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `bridge_worker/(\w+)/` \|", layout, re.MULTILINE)
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert sorted(rows) == subpackages
    assert set(rows) <= set(MAY_IMPORT)


def test_the_client_is_importable_from_the_package_and_only_on_first_use() -> None:
    """``from bridge_worker import Worker`` works; the worker's own start never loads the client."""
    probe = (
        "import sys; import bridge_worker, bridge_worker.wiring, bridge_worker.__main__; "
        "loaded = 'bridge_worker.client' in sys.modules; "
        "from bridge_worker import Worker, WorkerError; "
        "print(loaded, Worker.__module__, WorkerError.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "bridge_worker.client", "WorkerError"]
