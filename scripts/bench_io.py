"""``make bench``: the worker against in-process Optuna, measured the same way, side by side.

Rules that make the ratios honest (issue 24):

- every mode runs the same number of trials (``--trials``) after the same warm-up (``--warmup``,
  not measured: the first trials of any study are slower in every mode);
- the modes of one round run interleaved, in an order that rotates from round to round, so a
  burst of load elsewhere hits them alike; ``--rounds`` rounds give a median and a spread
  (min-max) per mode;
- every worker load is paired with in-process Optuna doing the same trials on the same kind of
  storage in the same round, and the table gives the ratio of the medians.

Loads: lock-step ask/tell through a raw pipe parent (which blocks in ``read``), through the
Python client (which polls briefly first), through an Erlang Port and through the full Elixir
client (``Study.ask`` + ``Study.tell``; both when Elixir is installed); the tell of one trial and
the ask of the next in one write; a burst (100 asks in one write, then 100 tells in one write);
ping lock-step and a ping burst; spawn to ``ready`` against ``python -c "import optuna"``; and
the same trial loads on SQLite and on a journal file (lock-step and pipelined) against
in-process Optuna on the same storage. RandomSampler, three parameters (a float, an int, a
categorical).

    make bench                                  # the full run (~10 minutes on a loaded 2-core VM)
    .venv/bin/python scripts/bench_io.py --quick
"""

from __future__ import annotations

import argparse
import collections
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import orjson
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent
SPACE = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "n": {"type": "int", "low": 1, "high": 100},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
}
DISTRIBUTIONS = {
    "x": FloatDistribution(-10.0, 10.0),
    "n": IntDistribution(1, 100),
    "c": CategoricalDistribution(["a", "b", "c"]),
}
BURST = 100


def objective(params: dict[str, Any]) -> float:
    return float(params["x"]) ** 2 + float(params["n"]) / 100


class Pipe:
    """A worker behind a raw pipe: frames written with ``os.write``, lines read with a buffer."""

    def __init__(self, storage: str, tree: Path | None = None) -> None:
        """``tree``: run the worker of another source tree (``--baseline``), else this one's."""
        env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "bridge_worker", "--storage", storage, "--log-level", "warning"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=tree,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self._partial = b""
        self._lines: collections.deque[bytes] = collections.deque()
        self.line()  # ready
        self.next_id = 0
        self._writer: threading.Thread | None = None

    def write(self, frames: list[dict[str, Any]]) -> None:
        """Write the frames as one write; a large burst from a thread (the worker's replies
        must be read meanwhile, or both ends would wait on full pipes)."""
        self.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in frames))

    def write_bytes(self, data: bytes) -> None:
        """Write frames already encoded (pings: the frames are made before the clock starts)."""
        if len(data) < 1 << 15:
            self._write_all(data)
            return
        if self._writer is not None:
            self._writer.join()
        self._writer = threading.Thread(target=self._write_all, args=(data,))
        self._writer.start()

    def _write_all(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._in, data) :]

    def line(self) -> Any:
        lines = self._lines
        while not lines:
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise RuntimeError("worker exited")
            *whole, self._partial = (self._partial + chunk).split(b"\n")
            lines.extend(whole)
        return orjson.loads(lines.popleft())

    def skip(self, count: int) -> None:
        """Take ``count`` replies without decoding them, only checking that none is an error:
        the harness must not cap the rate it measures (a decode per reply cost the parent
        ~0.9 us, a third of what a ping costs the worker). Only replies the parent uses (an
        ``ask``'s trials) are decoded."""
        lines = self._lines
        while count and lines:
            if b'"error"' in lines.popleft():
                raise RuntimeError("error reply")
            count -= 1
        while count:
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise RuntimeError("worker exited")
            if b'"error"' in chunk:
                raise RuntimeError(f"error reply: {chunk[:200]!r}")
            ends = chunk.count(b"\n")
            if ends <= count:
                count -= ends
                self._partial = chunk[chunk.rfind(b"\n") + 1 :] if ends else self._partial + chunk
                continue
            *whole, self._partial = (self._partial + chunk).split(b"\n")
            lines.extend(whole[count:])
            count = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.write([self.frame(method, params)])
        reply = self.line()
        return reply["result"]

    def frame(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        f: dict[str, Any] = {"id": self.next_id, "method": method}
        if params is not None:
            f["params"] = params
        return f

    def close(self) -> None:
        if self._writer is not None:
            self._writer.join()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _study_name() -> str:
    return f"b{time.monotonic_ns()}"


# ---- trial loads: each returns seconds per measured trial -------------------------------------


def inproc(storage: Any, trials: int, warmup: int, mode: str) -> float:
    study = optuna.create_study(
        storage=storage, study_name=_study_name(), sampler=optuna.samplers.RandomSampler(seed=1)
    )
    started = 0.0
    done = 0
    while done < warmup + trials:
        if not started and done >= warmup:
            started, trials = time.perf_counter(), warmup + trials - done
        group = BURST if mode == "burst" else 1
        asked = [study.ask(DISTRIBUTIONS) for _ in range(group)]
        for t in asked:
            study.tell(t, objective(t.params))
        done += group
    return (time.perf_counter() - started) / trials


def worker(
    storage_url: str, trials: int, warmup: int, mode: str, tree: Path | None = None
) -> float:
    pipe = Pipe(storage_url, tree)
    study = _study_name()
    pipe.call(
        "create", {"study": study, "search_space": SPACE, "sampler": {"type": "random", "seed": 1}}
    )
    ask = {"study": study}
    started = 0.0
    done = 0
    if mode == "burst":
        while done < warmup + trials:
            if not started and done >= warmup:
                started, trials = time.perf_counter(), warmup + trials - done
            pipe.write([pipe.frame("ask", ask) for _ in range(BURST)])
            asked = [pipe.line()["result"]["trials"][0] for _ in range(BURST)]
            pipe.write(
                [
                    pipe.frame(
                        "tell",
                        {"study": study, "number": t["number"], "value": objective(t["params"])},
                    )
                    for t in asked
                ]
            )
            pipe.skip(BURST)
            done += BURST
    elif mode == "pipelined":  # tell i + ask i+1 in one write
        trial = pipe.call("ask", ask)["trials"][0]
        while done < warmup + trials:
            if done == warmup:
                started = time.perf_counter()
            tell = {"study": study, "number": trial["number"], "value": objective(trial["params"])}
            pipe.write([pipe.frame("tell", tell), pipe.frame("ask", ask)])
            pipe.skip(1)
            trial = pipe.line()["result"]["trials"][0]
            done += 1
    else:  # lock-step
        while done < warmup + trials:
            if done == warmup:
                started = time.perf_counter()
            trial = pipe.call("ask", ask)["trials"][0]
            tell = {"study": study, "number": trial["number"], "value": objective(trial["params"])}
            pipe.write([pipe.frame("tell", tell)])
            pipe.skip(1)
            done += 1
    elapsed = time.perf_counter() - started
    pipe.close()
    return elapsed / trials


def python_client(trials: int, warmup: int) -> float:
    """Lock-step through :class:`bridge_worker.client.Worker`, which polls for the reply for up
    to ``spin_us`` before blocking in ``read`` (the raw pipe parent above always blocks)."""
    from bridge_worker.client import Worker

    client = Worker.spawn()
    study = _study_name()
    client.call(
        "create", {"study": study, "search_space": SPACE, "sampler": {"type": "random", "seed": 1}}
    )
    ask = {"study": study}
    started = 0.0
    for done in range(warmup + trials):
        if done == warmup:
            started = time.perf_counter()
        trial: dict[str, Any] = client.call("ask", ask)["trials"][0]
        client.call(
            "tell",
            {"study": study, "number": trial["number"], "value": objective(trial["params"])},
        )
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed / trials


def erlang_port(trials: int, warmup: int, script: str = "bench/port_lockstep.exs") -> float:
    """Lock-step through an Erlang Port (``clients/elixir/bench/port_lockstep.exs``), or through
    the full Elixir client (``bench/study_lockstep.exs``: ``Study.ask`` + ``Study.tell``)."""
    env = {**os.environ, "TRIALS": str(trials), "WARMUP": str(warmup)}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "elixir_bench.sh"), script],
        env=env,
        capture_output=True,
        check=True,
        timeout=3600,
    ).stdout
    return float(orjson.loads(out.splitlines()[-1])["seconds_per_trial"])


# ---- pings and start-up -----------------------------------------------------------------------


def ping_lockstep(count: int, tree: Path | None = None) -> float:
    pipe = Pipe("memory", tree)
    ping = orjson.dumps(pipe.frame("ping")) + b"\n"
    for _ in range(100):
        pipe.write_bytes(ping)
        pipe.skip(1)
    started = time.perf_counter()
    for _ in range(count):
        pipe.write_bytes(ping)
        pipe.skip(1)
    elapsed = time.perf_counter() - started
    pipe.close()
    return elapsed / count


def ping_burst(count: int, tree: Path | None = None) -> float:
    pipe = Pipe("memory", tree)
    pipe.write([pipe.frame("ping") for _ in range(100)])
    pipe.skip(100)
    burst = b"".join(orjson.dumps(pipe.frame("ping")) + b"\n" for _ in range(count))
    started = time.perf_counter()
    pipe.write_bytes(burst)
    pipe.skip(count)
    elapsed = time.perf_counter() - started
    pipe.close()
    return elapsed / count


def compile_package(root: Path = ROOT) -> None:
    """Write the worker's bytecode before anything is timed. A worker installed from a wheel has
    it; one run from the source tree with ``PYTHONDONTWRITEBYTECODE=1`` (as CI and the tests set
    it) would compile its ~11k lines at every start (~0.15x of ``import optuna``), a cost
    ``import optuna``, whose bytecode pip wrote, never pays."""
    compileall.compile_dir(str(root / "bridge_worker"), quiet=1)


def spawn_ready() -> float:
    started = time.perf_counter()
    pipe = Pipe("memory")
    elapsed = time.perf_counter() - started
    pipe.close()
    return elapsed


def import_optuna() -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import optuna"], check=True)
    return time.perf_counter() - started


# ---- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_io_"))
    counter = iter(range(1_000_000))

    def sqlite_url() -> str:
        return f"sqlite:///{tmp}/s{next(counter)}.db"

    def journal_path() -> str:
        return f"{tmp}/j{next(counter)}.log"

    def journal_storage() -> Any:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(journal_path()))

    n, w, dn, dw = args.trials, args.warmup, args.durable_trials, args.durable_warmup
    modes: dict[str, Callable[[], float]] = {
        "memory in-process": lambda: inproc(None, n, w, "lock-step"),
        "memory in-process burst": lambda: inproc(None, n, w, "burst"),
        "memory lock-step": lambda: worker("memory", n, w, "lock-step"),
        "memory lock-step (Python client)": lambda: python_client(n, w),
        "memory tell+ask one write": lambda: worker("memory", n, w, "pipelined"),
        "memory burst": lambda: worker("memory", n, w, "burst"),
        "ping lock-step": lambda: ping_lockstep(args.pings),
        "ping burst": lambda: ping_burst(args.pings),
        "spawn to ready": spawn_ready,
        "import optuna": import_optuna,
    }
    if args.baseline is not None:  # the same memory loads, another tree's worker, alternated
        base = args.baseline
        modes |= {
            "memory lock-step [baseline]": lambda: worker("memory", n, w, "lock-step", base),
            "memory tell+ask one write [baseline]": lambda: worker(
                "memory", n, w, "pipelined", base
            ),
            "memory burst [baseline]": lambda: worker("memory", n, w, "burst", base),
            "ping lock-step [baseline]": lambda: ping_lockstep(args.pings, base),
            "ping burst [baseline]": lambda: ping_burst(args.pings, base),
        }
    if shutil.which("elixir") and not args.no_elixir:
        modes["memory lock-step (Erlang Port)"] = lambda: erlang_port(n, w)
        modes["memory lock-step (Elixir Study.ask+tell)"] = lambda: erlang_port(
            n, w, "bench/study_lockstep.exs"
        )
    if not args.no_durable:
        modes |= {
            "sqlite in-process": lambda: inproc(sqlite_url(), dn, dw, "lock-step"),
            "sqlite lock-step": lambda: worker(sqlite_url(), dn, dw, "lock-step"),
            "sqlite tell+ask one write": lambda: worker(sqlite_url(), dn, dw, "pipelined"),
            "sqlite burst": lambda: worker(sqlite_url(), dn, dw, "burst"),
            "journal in-process": lambda: inproc(journal_storage(), dn, dw, "lock-step"),
            "journal lock-step": lambda: worker(
                f"journal:///{journal_path()}", dn, dw, "lock-step"
            ),
            "journal tell+ask one write": lambda: worker(
                f"journal:///{journal_path()}", dn, dw, "pipelined"
            ),
            "journal burst": lambda: worker(f"journal:///{journal_path()}", dn, dw, "burst"),
        }
    names = list(modes)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(modes[name]())
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    return results


def _fmt(seconds: float) -> str:
    if seconds < 1e-5:  # pings: a microsecond is a fifth of the figure
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e6:.0f} us" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def table(results: dict[str, list[float]], args: argparse.Namespace) -> str:
    med = {k: statistics.median(v) for k, v in results.items()}

    def row(name: str, base: str | None) -> str:
        values = results[name]
        spread = f"{_fmt(min(values))} - {_fmt(max(values))}"
        ratio = f"{med[name] / med[base]:.2f}x" if base else ""
        return f"| {name} | {_fmt(med[name])} | {spread} | {ratio} |"

    rows = [
        "| load | median per trial / call | spread (min - max) | ratio |",
        "|---|---:|---:|---:|",
        row("memory in-process", None),
        row("memory lock-step", "memory in-process"),
        row("memory lock-step (Python client)", "memory in-process"),
        row("memory tell+ask one write", "memory in-process"),
        *(
            [
                row("memory lock-step (Erlang Port)", "memory in-process"),
                row("memory lock-step (Elixir Study.ask+tell)", "memory in-process"),
            ]
            if "memory lock-step (Erlang Port)" in results
            else []
        ),
        row("memory in-process burst", None),
        row("memory burst", "memory in-process burst"),
        row("ping lock-step", None),
        row("ping burst", "ping lock-step"),
        *(
            [
                row("memory lock-step [baseline]", "memory in-process"),
                row("memory tell+ask one write [baseline]", "memory in-process"),
                row("memory burst [baseline]", "memory in-process burst"),
                row("ping lock-step [baseline]", None),
                row("ping burst [baseline]", "ping lock-step [baseline]"),
            ]
            if "memory burst [baseline]" in results
            else []
        ),
        row("import optuna", None),
        row("spawn to ready", "import optuna"),
    ]
    for kind in ("sqlite", "journal"):
        if f"{kind} in-process" in results:
            base = f"{kind} in-process"
            rows += [row(base, None)] + [
                row(f"{kind} {m}", base) for m in ("lock-step", "tell+ask one write", "burst")
            ]
    load = os.getloadavg()
    header = (
        f"`{' '.join(['scripts/bench_io.py', *sys.argv[1:]])}`: {args.trials} trials "
        f"({args.durable_trials} on SQLite/journal) after {args.warmup} ({args.durable_warmup}) "
        f"warm-up, {args.rounds} alternated rounds, RandomSampler, 3 params; "
        f"{platform.python_version()}, Optuna {optuna.__version__}, {os.cpu_count()} CPUs, "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. Ratios: the "
        "worker's median over in-process Optuna's on the same storage (ping burst: per ping over "
        "the lock-step round trip; spawn: over `python -c 'import optuna'`)."
    )
    if args.baseline is not None:
        commit = subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        header += (
            f" `[baseline]` rows: the worker of `{args.baseline}` (commit `{commit or '?'}`), "
            "alternated with this tree's in every round."
        )
    return header + "\n\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--durable-trials", type=int, default=200)
    parser.add_argument("--durable-warmup", type=int, default=100)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-durable", action="store_true")
    parser.add_argument("--no-elixir", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a short run (numbers are noisy)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_io.md"))
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another source tree (e.g. a worktree of main): its worker runs the memory and "
        "ping loads too, alternated with this one's ([baseline] rows)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.warmup, args.durable_trials, args.durable_warmup = 200, 100, 100, 100
        args.pings, args.rounds = 1000, 3
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    compile_package()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        compile_package(args.baseline)
    text = table(run(args), args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
