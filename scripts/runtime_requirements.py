"""Write the worker's runtime requirements: the part of requirements/lock.txt a wheel needs.

``make dist`` ships them beside the wheel (in the Elixir client's ``priv/python/``) so that
``mix optuna_bridge.install`` installs exactly the locked versions, hashes checked, without the
test, lint and optional-backend packages of the full lock. The set is the dependency closure of
``optuna-bridge`` (no extras) as the installed metadata in this venv declares it, markers
evaluated for this interpreter (the platform the lock targets); pins and hashes are copied
verbatim from the lock, so nothing is re-resolved.

Usage: ``python scripts/runtime_requirements.py LOCK OUT [WHEEL]``. With WHEEL, its file name and
sha256 are appended as the last requirement, so one ``pip install --require-hashes`` checks the
worker too. The extras in ``EXTRAS`` come along: ``plots``, because the client's API draws figures
(``plot``) and its README quick start does; storage drivers and optional samplers do not.
"""

from __future__ import annotations

import hashlib
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "optuna-bridge"
EXTRAS = frozenset({"plots"})


def closure(project: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Canonical names of every distribution ``project[extras]`` needs at run time (itself
    excluded), following the extras each requirement names."""
    seen: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(project, extras)]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in done:
            continue
        done.add((name, wanted))
        for spec in metadata.distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in {"", *wanted}
            ):
                continue
            dep = canonicalize_name(req.name)
            seen.add(dep)
            todo.append((dep, frozenset(req.extras)))
    return seen


def lock_blocks(lock: str) -> dict[str, str]:
    """``name -> block`` of a hashed lock (``name==version \\`` then indented lines)."""
    blocks: dict[str, str] = {}
    name = ""
    for line in lock.splitlines():
        head = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if head:
            name = canonicalize_name(head.group(1))
            blocks[name] = ""
        if name and (head or line.startswith(" ")):
            blocks[name] += line + "\n"
        elif not line.startswith(" "):
            name = ""
    return blocks


def main(argv: list[str]) -> int:
    lock_path, out_path = Path(argv[0]), Path(argv[1])
    blocks = lock_blocks(lock_path.read_text())
    needed = sorted(closure(PROJECT, EXTRAS) - {canonicalize_name(PROJECT)})
    missing = [name for name in needed if name not in blocks]
    if missing:
        print(f"not in {lock_path}: {', '.join(missing)} (run make lock)", file=sys.stderr)
        return 1
    text = (
        f"# The runtime part of {lock_path.as_posix()} for {PROJECT}[{','.join(sorted(EXTRAS))}] "
        f"{metadata.version(PROJECT)}, written by scripts/runtime_requirements.py\n"
        "# (make dist). Install with: pip install --require-hashes --no-deps -r <this file>\n"
    )
    text += "".join(blocks[name] for name in needed)
    if len(argv) > 2:
        wheel = Path(argv[2])
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        text += f"./{wheel.name} \\\n    --hash=sha256:{digest}\n"
    out_path.write_text(text)
    print(f"wrote {out_path}: {len(needed)} locked packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
