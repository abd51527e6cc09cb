"""What the study-identity check costs per frame (issue 17).

Before serving a cached study a worker reads the name's identity (one indexed read: see
``bridge_worker/storage/identity.py``). Measured in-process on each storage, for a study with 100
trials: the check alone (``read_identity``), and a ``best`` frame and a Random ``ask`` + ``tell``
pair through the endpoint with the check on and with it switched off, so the difference is what the
check adds to a real frame.

    .venv/bin/python -m scripts.identity_cost [--repeats 500] [--storages sqlite,journal,postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from bridge_worker.storage.identity import read_identity
from bridge_worker.storage.options import StorageOptions
from bridge_worker.studies import registry as registry_module
from bridge_worker.wiring import build_endpoint
from scripts.storages import throwaway_storages

SPACE = {"x": {"type": "float", "low": 0, "high": 1}}


def median_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(url: str, repeats: int) -> dict[str, float]:
    endpoint = build_endpoint(StorageOptions(url))
    registry = endpoint.dispatcher.registry
    create = {"study": "s", "sampler": {"type": "random", "seed": 1}, "search_space": SPACE}
    endpoint.handle(orjson.dumps({"id": 1, "method": "create", "params": create}))
    for _ in range(100):
        (asked,) = endpoint.handle(b'{"id":2,"method":"ask","params":{"study":"s"}}')
        number = orjson.loads(asked)["result"]["trials"][0]["number"]
        endpoint.handle(
            b'{"id":3,"method":"tell","params":{"study":"s","number":%d,"value":%d}}'
            % (number, number)
        )
    storage = registry.storage

    def ask_tell() -> None:
        (asked,) = endpoint.handle(b'{"id":2,"method":"ask","params":{"study":"s"}}')
        number = orjson.loads(asked)["result"]["trials"][0]["number"]
        endpoint.handle(
            b'{"id":3,"method":"tell","params":{"study":"s","number":%d,"value":1}}' % number
        )

    def best() -> None:
        endpoint.handle(b'{"id":4,"method":"best","params":{"study":"s"}}')

    figures = {"check": median_us(lambda: read_identity(storage, "s"), repeats)}
    for name, frame, n in (("best", best, repeats), ("ask_tell", ask_tell, max(50, repeats // 5))):
        on, off = [], []
        for _ in range(n):  # interleaved, so load from elsewhere hits both alike
            for checked, times in ((True, on), (False, off)):
                registry_module.is_shared = lambda s, checked=checked: checked  # type: ignore[assignment]
                start = time.perf_counter()
                frame()
                times.append(time.perf_counter() - start)
        figures[f"{name}_on"] = statistics.median(on) * 1e6
        figures[f"{name}_off"] = statistics.median(off) * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--storages", default="sqlite,journal,postgresql")
    args = parser.parse_args()
    original = registry_module.is_shared
    print(
        "| storage | identity read | `best` frame, check on / off | Random `ask`+`tell`, "
        "check on / off |"
    )
    print("|---|---:|---|---|")
    with throwaway_storages(args.storages.split(",")) as urls:
        for kind, url in urls.items():
            f = measure(url, args.repeats)
            registry_module.is_shared = original
            print(
                f"| {kind} | {f['check']:.0f} µs | {f['best_on']:.0f} / {f['best_off']:.0f} µs "
                f"({f['best_on'] / f['best_off']:.2f}x) | {f['ask_tell_on'] / 1000:.2f} / "
                f"{f['ask_tell_off'] / 1000:.2f} ms ({f['ask_tell_on'] / f['ask_tell_off']:.2f}x)"
                " |"
            )


if __name__ == "__main__":
    main()
