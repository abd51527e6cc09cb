"""How long the longest frames take on SQLite at the default limits, and how soon SIGTERM ends a
worker in the middle of one (README, "Long frames and stop signals").

    .venv/bin/python -m scripts.long_frames [--import-trials N] [--studies N] [--delete-trials N]
        [--only-delete]

Each case runs a fresh worker on a fresh SQLite file. Wall times on a shared machine are noisy;
the script prints what it measured, the README records one run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from msgspec import UnsetType

from bridge_worker.client import Worker, WorkerError
from bridge_worker.config import SQL_MAX_ADD_VALUES
from tests.helpers import grow_sqlite_study


def space(params: int) -> dict[str, Any]:
    return {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(params)}


def trials(n: int, params: int) -> list[dict[str, Any]]:
    return [
        {"params": {f"p{i}": (k + i) % 10 / 10 for i in range(params)}, "value": float(k)}
        for k in range(n)
    ]


def timed(label: str, started: float) -> float:
    elapsed = time.monotonic() - started
    print(f"{label}: {elapsed:.2f} s", flush=True)
    return elapsed


def sigterm_during(url: str, method: str, params: dict[str, Any], args: list[str]) -> None:
    worker = Worker.spawn(url, args=args, timeout=None)
    try:
        if method == "add_trials":
            worker.create("s", search_space=space(10))
        worker.send(method, params)
        time.sleep(1.0)
        worker.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        reply = worker.receive()
        worker.proc.wait()
        kind = "result" if isinstance(reply.error, UnsetType) else reply.error.data["kind"]
        timed(f"SIGTERM 1 s into {method} -> exit ({kind})", started)
    finally:
        worker.close()


def delete_case(db: Path, n: int) -> None:
    """``delete`` of an n-trial study, and the longest another worker on the file waited for an
    ask + tell + list meanwhile."""
    url = f"sqlite:///{db}"
    with Worker.spawn(url) as maker:
        maker.create("big", search_space=space(1))
        maker.add_trials("big", [{"params": {"p0": 0.5}, "value": 1.0, "user_attrs": {"u": 1}}])
        maker.create("small", search_space=space(1))
    grow_sqlite_study(db, "big", n)
    with Worker.spawn(url, timeout=None) as deleter, Worker.spawn(url, timeout=None) as other:
        deleter.list_studies()
        done = threading.Event()
        took: list[float] = []
        errors: list[str] = []

        def delete() -> None:
            started = time.monotonic()
            deleter.delete("big")
            took.append(time.monotonic() - started)
            done.set()

        thread = threading.Thread(target=delete)
        thread.start()
        waits = []
        while not done.is_set():
            started = time.monotonic()
            try:
                (trial,) = other.ask("small")
                other.tell("small", trial.number, 1.0)
                other.list_studies()
            except WorkerError as error:
                errors.append(str(error))
            waits.append(time.monotonic() - started)
        thread.join()
        print(
            f"delete of a {n}-trial study (1 param): {took[0]:.2f} s; another worker's "
            f"ask + tell + list meanwhile: {len(waits)} calls, longest {max(waits):.2f} s, "
            f"{len(errors)} errors {errors[:1]}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import-trials", type=int, default=600)
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--delete-trials", type=int, default=25600)
    parser.add_argument("--only-delete", action="store_true", help="run the delete case only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="long-frames-"))
    if args.only_delete:
        delete_case(work / "e.db", args.delete_trials)
        return 0
    with Worker.spawn() as maker:
        maker.create("s", search_space=space(10))
        for start in range(0, args.import_trials, 180):
            maker.add_trials("s", trials(min(180, args.import_trials - start), 10))
        snapshot = maker.export("s")

    url = f"sqlite:///{work / 'a.db'}"
    sigterm_during(url, "import", {"snapshot": snapshot, "study": "t"}, [])
    url = f"sqlite:///{work / 'b.db'}"
    sigterm_during(url, "add_trials", {"study": "s", "trials": trials(180, 10)}, [])

    bound = SQL_MAX_ADD_VALUES  # the default on SQLite
    with Worker.spawn(f"sqlite:///{work / 'c.db'}", timeout=None) as worker:
        worker.create("one", search_space=space(1))
        started = time.monotonic()
        worker.add_trials("one", trials(bound // 2, 1))
        timed(
            f"add_trials {bound // 2} trials x 1 param ({bound} values, the default bound)", started
        )
        worker.create("wide", search_space=space(bound // 2 - 1))
        started = time.monotonic()
        worker.add_trials("wide", trials(2, bound // 2 - 1))
        timed(f"add_trials 2 trials x {bound // 2 - 1} params ({bound} values)", started)

    with Worker.spawn(f"sqlite:///{work / 'd.db'}", timeout=None) as worker:
        for i in range(args.studies):
            worker.create(f"s{i}")
        started = time.monotonic()
        worker.list_studies()
        timed(f"list of {args.studies} studies", started)

    delete_case(work / "e.db", args.delete_trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
