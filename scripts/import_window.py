"""How long readers may see neither study while an overwriting ``import`` replaces it (issue 17).

Two real workers on one storage: the writer imports a snapshot (``--trials`` trials, value 2.0)
over a study of as many trials (value 1.0); the reader polls it lock-step with ``trials``
(``offset`` = trials - 1, ``limit`` 1: one trial iff the study is complete) and labels every reply
``old``, ``new`` or ``neither`` (an error, or a study that is not complete). Printed per storage:
how long the import took, how many polls saw neither, and the window: from the reply after the
last ``old`` to the last ``neither`` (0 when no poll saw neither; the poll period bounds what a
window shorter than one poll could hide).

    .venv/bin/python -m scripts.import_window [--trials 300] [--storages sqlite,journal,postgresql]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time

from bridge_worker.client import Worker, WorkerError
from scripts.storages import throwaway_storages


def snapshot(n_trials: int, value: float) -> dict[str, object]:
    with Worker.spawn() as w:
        w.create(
            "s",
            search_space={"x": {"type": "float", "low": 0, "high": 1}},
            sampler={"type": "random", "seed": 1},
        )
        for start in range(0, n_trials, 500):
            for trial in w.ask("s", n=min(500, n_trials - start)):
                w.tell("s", trial.number, value=value)
        result: dict[str, object] = w.export("s")
        return result


def label(reader: Worker, n_trials: int) -> str:
    try:
        found = reader.trials("s", offset=n_trials - 1, limit=1)
    except WorkerError:
        return "neither"
    if len(found) != 1 or found[0].values is None:
        return "neither"
    return {1.0: "old", 2.0: "new"}.get(found[0].values[0], "neither")


def measure(url: str, old: dict[str, object], new: dict[str, object], n: int) -> dict[str, float]:
    with Worker.spawn(url) as writer, Worker.spawn(url) as reader:
        writer.import_(old, study="s")
        assert label(reader, n) == "old"
        seen: list[tuple[float, str]] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                seen.append((time.perf_counter(), label(reader, n)))

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.2)
        started = time.perf_counter()
        writer.import_(new, study="s", overwrite=True)
        took = time.perf_counter() - started
        time.sleep(0.2)
        done.set()
        thread.join()
    labels = [lab for _, lab in seen]
    assert labels[-1] == "new", labels[-5:]
    neither = [t for t, lab in seen if lab == "neither"]
    last_old = max((i for i, (_, lab) in enumerate(seen) if lab == "old"), default=0)
    window = (neither[-1] - seen[last_old + 1][0]) if neither else 0.0
    period = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(seen))
    return {
        "import": took,
        "polls": len(seen),
        "neither": len(neither),
        "window": window,
        "period": period,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--storages", default="sqlite,journal,postgresql")
    args = parser.parse_args()
    old, new = snapshot(args.trials, 1.0), snapshot(args.trials, 2.0)
    print(
        f"| storage ({args.trials} trials) | import | polls | polls seeing neither | "
        "window readers may see neither | poll period |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    with throwaway_storages(args.storages.split(",")) as urls:
        for kind, url in urls.items():
            f = measure(url, old, new, args.trials)
            print(
                f"| {kind} | {f['import']:.2f} s | {f['polls']:.0f} | {f['neither']:.0f} | "
                f"{f['window'] * 1000:.0f} ms | {f['period'] * 1000:.1f} ms |"
            )


if __name__ == "__main__":
    main()
