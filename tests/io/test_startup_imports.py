"""What a default start imports (issue 24: spawn to ``ready`` costs no more than ``import optuna``).

Not a timed test: a real worker on the default storage is started with ``-X importtime`` and the
modules it imported are read from that output. Everything a worker on in-memory storage does not
need until a method asks for it (figures, artifacts, durable storages' drivers, the proxy, seeded
samplers' generators) is imported on first use, so a module named here showing up at start is a
regression of the start-up time.
"""

from __future__ import annotations

import subprocess

from tests.helpers import PYTHON, ROOT

DEFERRED = {
    "matplotlib",
    "plotly",
    "kaleido",
    "sqlalchemy",
    "alembic",
    "psycopg2",
    "grpc",
    "redis",
    "scipy",
    "pandas",
    "cmaes",
    "numpy.random",
    "optuna.artifacts",
    "optuna.visualization",
    "optuna.importance",
    "bridge_worker.studies.figures",
    "bridge_worker.studies.figure_sandbox",
    "bridge_worker.storage.grpc_storage",
    "bridge_worker.proxy",
}
"""Imported on first use only; ``bridge_worker.*`` ones by name, the others with submodules."""


def _imported(*argv: str, stdin: bytes = b"") -> set[str]:
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *argv],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m in DEFERRED or m.split(".")[0] in DEFERRED}


def test_a_default_start_imports_nothing_it_does_not_need() -> None:
    """Beyond what ``import optuna`` itself imports, a worker that started, answered a ping and a
    create, and stopped imported none of the modules deferred to first use, nor the ``redis``
    that a plain ``import optuna`` imports for its journal backend."""
    optuna_own = _imported("-c", "import optuna")
    worker = _imported(
        "-m",
        "bridge_worker",
        "--log-level",
        "warning",
        stdin=b'{"id":1,"method":"ping"}\n'
        b'{"id":2,"method":"create","params":{"study":"s",'
        b'"search_space":{"x":{"type":"float","low":0,"high":1}}}}\n',
    )
    assert "bridge_worker.studies.registry" in worker  # the output was read
    assert _heavy(worker - optuna_own) == set()
    # Optuna's own import of redis is deferred too (bridge_worker/storage/redis_import.py): the
    # only trace is the attempt Optuna made while redis was hidden (no submodule of it).
    assert any(m.startswith("redis.") for m in optuna_own)
    assert not [m for m in worker if m.startswith("redis.")]


def test_garbage_collection_is_back_on_once_the_worker_serves() -> None:
    """Start-up runs without collections (nothing it allocates is garbage); the worker that
    serves frames collects again, with the start-up objects frozen out of full collections."""
    code = (
        "import atexit, gc, os, sys\n"
        "atexit.register(lambda: os.write(2, b'GC %d %d\\n' % (gc.isenabled(), "
        "gc.get_freeze_count())))\n"
        "sys.argv = ['optuna-bridge', '--log-level', 'warning']\n"
        "from bridge_worker.__main__ import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        input=b'{"id":1,"method":"ping"}\n',
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [x for x in done.stderr.splitlines() if x.startswith(b"GC ")]
    enabled, frozen = map(int, line.split()[1:])
    assert enabled == 1
    assert frozen > 10_000
