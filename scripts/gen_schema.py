"""Write protocol/schema/optuna-bridge.schema.json from the msgspec types (``make schema``)."""

from __future__ import annotations

import sys
from pathlib import Path

from bridge_worker.schema_export import SCHEMA_FILE, render

TARGET = Path(__file__).resolve().parent.parent / "protocol" / "schema" / SCHEMA_FILE


def main() -> None:
    TARGET.write_bytes(render())
    print(f"wrote {TARGET}", file=sys.stderr)


if __name__ == "__main__":
    main()
