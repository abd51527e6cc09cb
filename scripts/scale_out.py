"""The three ways to run workers, measured side by side on a throw-away PostgreSQL server.

1. one worker (in memory, and on PostgreSQL);
2. N workers, each with its own connection pool to PostgreSQL;
3. N workers through one ``optuna-bridge proxy`` in front of the same PostgreSQL.

For each: wall time of N x M Random-sampler ask/tell trials on one shared study, trials per second,
whether every trial number 0..N*M-1 is there exactly once, and the most database connections seen
while it ran (``pg_stat_activity``).

    .venv/bin/python -m scripts.scale_out --workers 4 --trials 100
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bridge_worker.client import Worker
from tests.servers import postgres_server

SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "y": {"type": "int", "low": -5, "high": 5},
}


def run_worker(url: str, n_trials: int) -> list[int]:
    numbers = []
    with Worker.spawn(url) as worker:
        worker.create("shared", search_space=SPACE, load_if_exists=True, sampler={"type": "random"})
        for _ in range(n_trials):
            (trial,) = worker.ask("shared")
            x, y = float(trial.params["x"]), int(trial.params["y"])  # type: ignore[arg-type]
            worker.tell("shared", trial.number, x * x + y * y)
            numbers.append(trial.number)
    return numbers


class ConnectionWatch:
    """The most connections to ``database`` seen while running (polled every 50 ms)."""

    def __init__(self, admin_url: str, database: str) -> None:
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(admin_url)
        self._query = sqlalchemy.text(
            "select count(*) from pg_stat_activity where datname = :db and pid <> pg_backend_pid()"
        )
        self._database = database
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _poll(self) -> None:
        with self._engine.connect() as connection:
            while not self._stop.wait(0.05):
                count = connection.execute(self._query, {"db": self._database}).scalar_one()
                connection.commit()  # pg_stat_activity is a snapshot per transaction
                self.most = max(self.most, int(count))


def measure(
    label: str, url: str, workers: int, trials: int, watch_url: str | None, database: str | None
) -> None:
    started = time.perf_counter()
    if watch_url and database:
        with ConnectionWatch(watch_url, database) as watch, ThreadPoolExecutor(workers) as pool:
            per_worker = list(pool.map(run_worker, [url] * workers, [trials] * workers))
        connections = str(watch.most)
    else:
        with ThreadPoolExecutor(workers) as pool:
            per_worker = list(pool.map(run_worker, [url] * workers, [trials] * workers))
        connections = "-"
    elapsed = time.perf_counter() - started
    numbers = sorted(n for batch in per_worker for n in batch)
    complete = numbers == list(range(workers * trials))
    print(
        f"| {label} | {workers} x {trials} | {elapsed:.1f} s | "
        f"{workers * trials / elapsed:.0f} | {'yes' if complete else 'NO'} | {connections} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    from tests.servers import start_proxy

    for server in postgres_server():
        print(
            "| shape | workers x trials | wall time | trials/s | numbers 0..N-1 once | "
            "most DB connections |"
        )
        print("|---|---|---:|---:|---|---:|")
        measure("one worker, memory", "memory", 1, args.trials, None, None)
        url = server.new_database()
        admin = url.rsplit("/", 1)[0] + "/postgres"
        measure("one worker, PostgreSQL", url, 1, args.trials, admin, url.rsplit("/", 1)[1])
        url = server.new_database()
        measure(
            "workers on PostgreSQL", url, args.workers, args.trials, admin, url.rsplit("/", 1)[1]
        )
        url = server.new_database()
        proxy, port = start_proxy(url)
        try:
            measure(
                "workers through the proxy",
                f"grpc://127.0.0.1:{port}",
                args.workers,
                args.trials,
                admin,
                url.rsplit("/", 1)[1],
            )
        finally:
            proxy.terminate()
            proxy.wait(15)


if __name__ == "__main__":
    main()
