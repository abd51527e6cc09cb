"""The worker's own cost per trial, without pipes: frames straight into the endpoint.

Side by side in one run: in-process Optuna (``study.ask(space)`` + ``study.tell``) and the
worker's endpoint handling ``ask`` + ``tell`` frames (seeded and unseeded RandomSampler), so the
difference is what the worker adds or saves, with no transport in it. ``--profile`` prints the
cProfile of the seeded endpoint run.

    .venv/bin/python scripts/profile_endpoint.py [--trials 2000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import optuna
import orjson
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bridge_worker.wiring import build_endpoint

SPACE = {
    "x": {"type": "float", "low": -5, "high": 5},
    "n": {"type": "int", "low": 1, "high": 9},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
}


def endpoint_us(trials: int, seeded: bool) -> float:
    endpoint = build_endpoint()
    sampler = {"type": "random", **({"seed": 1} if seeded else {})}
    create = {"study": "s", "sampler": sampler, "search_space": SPACE}
    endpoint.handle(orjson.dumps({"id": 1, "method": "create", "params": create}))
    start = time.perf_counter()
    for _ in range(trials):
        (asked,) = endpoint.handle(b'{"id":2,"method":"ask","params":{"study":"s"}}')
        number = orjson.loads(asked)["result"]["trials"][0]["number"]
        endpoint.handle(
            b'{"id":3,"method":"tell","params":{"study":"s","number":%d,"value":1.5}}' % number
        )
    return (time.perf_counter() - start) / trials * 1e6


def in_process_us(trials: int) -> float:
    space = {
        "x": FloatDistribution(-5, 5),
        "n": IntDistribution(1, 9),
        "c": CategoricalDistribution(["a", "b", "c"]),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(space)
        study.tell(trial, 1.5)
    return (time.perf_counter() - start) / trials * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs: dict[str, list[float]] = {"in-process": [], "endpoint": [], "endpoint, seeded": []}
    for _ in range(args.repeats):
        runs["in-process"].append(in_process_us(args.trials))
        runs["endpoint"].append(endpoint_us(args.trials, seeded=False))
        runs["endpoint, seeded"].append(endpoint_us(args.trials, seeded=True))
    base = statistics.median(runs["in-process"])
    print(f"Random ask+tell, {args.trials} trials, median of {args.repeats}:")
    for name, values in runs.items():
        median = statistics.median(values)
        print(f"  {name:18} {median:7.1f} µs/trial  ({median / base:.2f}x in-process)")
    if args.profile:
        cProfile.runctx("endpoint_us(args.trials, True)", globals(), {"args": args}, "/tmp/ep.prof")
        pstats.Stats("/tmp/ep.prof").sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
