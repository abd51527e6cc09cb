"""What each ``plot`` kind costs through a real worker: ``python scripts/figure_costs.py``.

A study of ``--trials`` trials over 4 parameters (float, log float, int, categorical; 3 reported
steps each) and a two-objective one; every kind is drawn ``--repeat`` times at ``--width`` x
``--height`` in ``--format``, and the median seconds per figure (the frame's round trip, child
process included), the CPU seconds of the worker and its drawing process, and the reply size
are printed, with the machine's load average beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from bridge_worker.client import Worker
from bridge_worker.studies.figures import FOR_ONE_OBJECTIVE

CHOICES = ["adam", "sgd", "rmsprop"]
FRAME_TRIALS = 200
"""Trials per add_trials frame: 8 values each stays within --max-add-values (2000)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--format", default="png", choices=["png", "svg", "plotly"])
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    with Worker.spawn() as worker:
        worker.create(
            "s",
            search_space={
                "x": {"type": "float", "low": -3, "high": 3},
                "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
                "layers": {"type": "int", "low": 1, "high": 8},
                "optimizer": {"type": "categorical", "choices": CHOICES},
            },
        )
        trials = []
        for _ in range(args.trials):
            x, layers, optimizer = rng.uniform(-3, 3), rng.randint(1, 8), rng.choice(CHOICES)
            value = x * x + 0.1 * layers + (optimizer == "sgd")
            trials.append(
                {
                    "params": {
                        "x": x,
                        "lr": 10 ** rng.uniform(-5, -1),
                        "layers": layers,
                        "optimizer": optimizer,
                    },
                    "value": value,
                    "intermediate_values": {str(s): value + 3 - s for s in range(3)},
                }
            )
        for start in range(0, len(trials), FRAME_TRIALS):
            worker.add_trials("s", trials[start : start + FRAME_TRIALS])
        worker.create(
            "m",
            directions=["minimize", "minimize"],
            search_space={"x": {"type": "float", "low": -3, "high": 3}},
        )
        xs = [rng.uniform(-3, 3) for _ in range(min(args.trials, 1000))]
        for start in range(0, len(xs), FRAME_TRIALS):
            worker.add_trials(
                "m",
                [
                    {"params": {"x": x}, "values": [x * x, (x - 1) ** 2]}
                    for x in xs[start : start + FRAME_TRIALS]
                ],
            )
        jobs = [("s", kind, {}) for kind in FOR_ONE_OBJECTIVE] + [
            ("m", "pareto_front", {}),
            ("m", "hypervolume_history", {"reference_point": [10.0, 10.0]}),
        ]
        worker.plot("s", "edf", args.format)  # the first figure imports the plotting libraries
        print(
            f"{args.trials} trials x 4 params, {args.format} {args.width}x{args.height}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for study, kind, extra in jobs:
            seconds, cpu = [], []
            for _ in range(args.repeat):
                started, cpu_started = time.perf_counter(), _cpu_seconds(worker.proc.pid)
                figure = worker.call(
                    "plot",
                    {
                        "study": study,
                        "kind": kind,
                        "format": args.format,
                        "width": args.width,
                        "height": args.height,
                        **extra,
                    },
                )
                seconds.append(time.perf_counter() - started)
                cpu.append(_cpu_seconds(worker.proc.pid) - cpu_started)
            size = len(figure.get("data", "")) or len(str(figure.get("figure", "")))
            print(
                f"{kind:<22} {statistics.median(seconds):6.2f} s  "
                f"{statistics.median(cpu):6.2f} s cpu  {size / 1024:8.0f} KiB"
            )


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of the worker and of its finished children (the drawing processes): what a
    figure costs whatever else runs on the machine, beside the wall-clock seconds that grow
    with the load."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
