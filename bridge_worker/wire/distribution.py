"""What the installed package carries besides code, and the versions it reports.

The wire contract ships inside the wheel as the package ``bridge_worker.protocol`` (mapped from
the repository's ``protocol/`` folder by ``pyproject.toml``): ``PROTOCOL.md``, the JSON Schema and
the example conversations. A parent in any language can read them from an installed worker
(``optuna-bridge schema``) instead of from a checkout of this repository.

Light on purpose: ``optuna-bridge --version`` and ``optuna-bridge schema`` answer without
importing Optuna or numpy (the Optuna version is read from the installed distribution's metadata).
"""

from __future__ import annotations

from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from bridge_worker import __version__

PROTOCOL_PACKAGE = "bridge_worker.protocol"
SCHEMA_FILE = "optuna-bridge.schema.json"
"""The file name ``make schema`` writes under ``protocol/schema/``."""


def protocol_files() -> Traversable:
    """The protocol folder as installed: ``PROTOCOL.md``, ``schema/``, ``examples/``. In a source
    checkout (``bridge_worker`` imported from the tree, where no package maps it) it is the
    repository's ``protocol/`` folder, the same files."""
    try:
        return resources.files(PROTOCOL_PACKAGE)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "protocol"


def schema_bytes() -> bytes:
    """The JSON Schema document shipped with this worker (what ``make schema`` generated)."""
    return (protocol_files() / "schema" / SCHEMA_FILE).read_bytes()


def version_text() -> str:
    """One line per version a parent may need: worker, protocol, Optuna."""
    from bridge_worker.wire.schema import PROTOCOL_VERSION  # msgspec only, no Optuna

    try:
        optuna = metadata.version("optuna")
    except metadata.PackageNotFoundError:
        optuna = "not installed"
    return f"optuna-bridge {__version__}\nprotocol {PROTOCOL_VERSION}\noptuna {optuna}"
