"""``make bench``: the worker side by side with in-process Optuna, the Optuna CLI and a raw pipe.

Everything is measured in the same run, on the same machine, with the same search space (three
parameters: a float, an int and a categorical) and the same objective, so the *ratios* are the
result; absolute figures move with the machine and its load. Each measurement is repeated; the
table gives the median of the repeats and their spread (min to max). The modes of one repeat run
interleaved (in a rotating order) so a burst of load elsewhere hits all of them alike.

What runs, per sampler (Random, TPE), for ``N`` trials on a fresh in-memory study each:

- ``in-process``: ``study.ask(distributions)`` + ``study.tell(trial, value)`` in this process;
- ``lock-step``: the worker through the Python client, ``ask`` then ``tell``, one call at a time;
- ``pipelined``: the worker with the ``tell`` of one trial and the ``ask`` of the next written
  back to back (one round trip per trial, the same sequential history as lock-step);
- ``batched``: ``ask`` with ``n=B`` then one JSON-RPC batch of ``B`` tells (2 round trips per B
  trials; for TPE the B trials of a batch are sampled from the same history);
- ``echo``: the same request frames through a raw pipe to a tiny Python child that echoes each
  line through orjson — the transport floor, no Optuna at all.

Plus: the Optuna CLI per step on SQLite (``optuna ask`` + ``optuna tell``), ``ping`` throughput
pipelined, start-up time to the ``ready`` frame against ``python -c "import optuna"``, and RSS per
idle study for many studies in one worker. Results: a Markdown table printed and written to
``results/bench.md``, the raw figures to ``results/bench.json`` and the cost-vs-trials curves to
``results/bench.png``.

    make bench                      # the full run, a few minutes
    make bench BENCH_ARGS=--quick   # under a minute (what tests/install/test_bench.py runs)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from bridge_worker.client import Worker, WorkerError, WorkerExited, unwrap
from bridge_worker.wire.schema import AskResult

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

SPACE: dict[str, dict[str, Any]] = {
    "x": {"type": "float", "low": -10.0, "high": 10.0},
    "n": {"type": "int", "low": 1, "high": 100},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
}
DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "x": FloatDistribution(-10.0, 10.0),
    "n": IntDistribution(1, 100),
    "c": CategoricalDistribution(["a", "b", "c"]),
}
PENALTY = {"a": 0.0, "b": 0.5, "c": 1.0}
SAMPLERS: dict[str, dict[str, Any]] = {
    "random": {"type": "random", "seed": 1},
    "tpe": {"type": "tpe", "seed": 1},
}
X = "\u00d7"
DASH = "\u2013"
SAMPLER_LABELS = {"random": "Random", "tpe": "TPE"}
MODES = ("in-process", "lock-step", "pipelined", "batched", "echo")
MODE_LABELS = {
    "in-process": "in-process Optuna (`study.ask(space)` + `study.tell`)",
    "lock-step": "worker lock-step (Python client `ask`, `tell`)",
    "pipelined": "worker pipelined (`tell` + next `ask` in flight)",
    "batched": "worker batched (`ask n={batch}` + batch of {batch} `tell`)",
    "echo": "raw pipe echo of the same frames, lock-step (transport floor)",
}

ECHO_CHILD = r"""
import os, orjson
pending = b""
while True:
    data = os.read(0, 1 << 16)
    if not data:
        break
    pending += data
    *lines, pending = pending.split(b"\n")
    out = b"".join(orjson.dumps(orjson.loads(line)) + b"\n" for line in lines if line)
    view = memoryview(out)
    while view:
        view = view[os.write(1, view):]
"""
"""The transport floor: reads what arrived, echoes every line through orjson in one write, as
the worker's own I/O loop does."""

STUDY_RSS_CHILD = r"""
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
n = int(sys.argv[1])
storage = optuna.storages.InMemoryStorage()
studies = [optuna.create_study(storage=storage, study_name="warm-up")]
before = rss()
for i in range(n):
    studies.append(optuna.create_study(
        storage=storage, study_name=f"s{i}",
        sampler=optuna.samplers.RandomSampler(seed=1)))
print(before, rss())
"""
"""In-process reference for RSS per idle study: the same number of studies in one process."""


def objective(params: dict[str, Any]) -> float:
    return float((params["x"] - 1.0) ** 2 + abs(params["n"] - 42) / 10 + PENALTY[params["c"]])


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    out: Path
    repeats: int
    random_trials: int
    tpe_trials: int
    tpe_repeats: int
    batch: int
    cli_steps: int
    pings: int
    startup_repeats: int
    studies: int
    checkpoints: dict[str, tuple[int, ...]]
    plot: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        if args.quick:
            base: dict[str, Any] = dict(
                repeats=3,
                random_trials=300,
                tpe_trials=100,
                tpe_repeats=1,
                cli_steps=2,
                pings=20_000,
                startup_repeats=3,
                studies=300,
                checkpoints={"random": (100, 300), "tpe": (50, 100)},
            )
        else:
            base = dict(
                repeats=5,
                random_trials=5000,
                tpe_trials=1000,
                tpe_repeats=3,
                cli_steps=6,
                pings=200_000,
                startup_repeats=7,
                studies=1000,
                checkpoints={"random": (100, 1000, 5000), "tpe": (100, 500, 1000)},
            )
        for name in ("repeats", "random_trials", "tpe_trials", "cli_steps", "studies"):
            if getattr(args, name) is not None:
                base[name] = getattr(args, name)
        base["checkpoints"] = {
            sampler: tuple(c for c in marks if c <= base[f"{sampler}_trials"])
            or (base[f"{sampler}_trials"],)
            for sampler, marks in base["checkpoints"].items()
        }
        return cls(quick=args.quick, out=args.out, batch=args.batch, plot=not args.no_plot, **base)


# ---------------------------------------------------------------------------------------------
# Recording a run: (trials done, seconds since start) marks; per-trial cost over any window
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    marks_n: list[int] = field(default_factory=lambda: [0])
    marks_t: list[float] = field(default_factory=lambda: [0.0])

    def per_trial(self, start: int | None = None, end: int | None = None) -> float:
        """Mean seconds per trial for trials ``(start, end]`` (interpolated between marks)."""
        end = self.marks_n[-1] if end is None else end
        start = 0 if start is None else start
        t_end, t_start = np.interp([end, start], self.marks_n, self.marks_t)
        return float(t_end - t_start) / (end - start)


class Clock:
    def __init__(self) -> None:
        self.run = Run()
        self._t0 = time.perf_counter()

    def mark(self, n_done: int) -> None:
        self.run.marks_n.append(n_done)
        self.run.marks_t.append(time.perf_counter() - self._t0)


# ---------------------------------------------------------------------------------------------
# Ask+tell loops
# ---------------------------------------------------------------------------------------------


def make_sampler(sampler: str) -> optuna.samplers.BaseSampler:
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=1)
    return optuna.samplers.TPESampler(seed=1)


def run_in_process(sampler: str, n: int, batch: int) -> Run:
    study = optuna.create_study(sampler=make_sampler(sampler))
    clock = Clock()
    for i in range(n):
        trial = study.ask(DISTRIBUTIONS)
        study.tell(trial, objective(trial.params))
        clock.mark(i + 1)
    return clock.run


def _create(worker: Worker, study: str, sampler: str) -> None:
    worker.create(study, sampler=SAMPLERS[sampler], search_space=SPACE)


def run_lock_step(worker: Worker, study: str, sampler: str, n: int, batch: int) -> Run:
    _create(worker, study, sampler)
    clock = Clock()
    for i in range(n):
        (trial,) = worker.ask(study)
        worker.tell(study, trial.number, objective(trial.params))
        clock.mark(i + 1)
    worker.delete(study)
    return clock.run


def run_pipelined(worker: Worker, study: str, sampler: str, n: int, batch: int) -> Run:
    """Tell of trial i and ask of trial i+1 written together: one round trip per trial."""
    _create(worker, study, sampler)
    ask = {"study": study}
    clock = Clock()
    worker.send("ask", ask)
    for i in range(n):
        (trial,) = unwrap(worker.receive(), AskResult).trials
        worker.send(
            "tell", {"study": study, "number": trial.number, "value": objective(trial.params)}
        )
        if i + 1 < n:
            worker.send("ask", ask)
        unwrap(worker.receive(), Any)  # the tell's reply, checked for errors
        clock.mark(i + 1)
    worker.delete(study)
    return clock.run


def run_batched(worker: Worker, study: str, sampler: str, n: int, batch: int) -> Run:
    """``ask n=B``, then the B tells in one JSON-RPC batch."""
    _create(worker, study, sampler)
    clock = Clock()
    done = 0
    while done < n:
        trials = worker.ask(study, n=min(batch, n - done))
        replies = worker.batch(
            ("tell", {"study": study, "number": t.number, "value": objective(t.params)})
            for t in trials
        )
        for reply in replies:
            unwrap(reply, Any)
        done += len(trials)
        clock.mark(done)
    worker.delete(study)
    return clock.run


@contextmanager
def echo_child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [PYTHON, "-c", ECHO_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=-1
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()


def run_echo(proc: subprocess.Popen[bytes], study: str, sampler: str, n: int, batch: int) -> Run:
    """The worker lock-step's frames (encoded and decoded as the client does) through an echo."""
    assert proc.stdin is not None and proc.stdout is not None
    encode, decode = msgspec.json.encode, msgspec.json.decode
    stdin, stdout = proc.stdin, proc.stdout
    ask = {"jsonrpc": "2.0", "id": 0, "method": "ask", "params": {"study": study, "n": 1}}
    clock = Clock()
    for i in range(n):
        ask["id"] = 2 * i + 1
        stdin.write(encode(ask) + b"\n")
        stdin.flush()
        decode(stdout.readline())
        tell = {
            "jsonrpc": "2.0",
            "id": 2 * i + 2,
            "method": "tell",
            "params": {"study": study, "number": i, "value": 0.5, "state": "complete"},
        }
        stdin.write(encode(tell) + b"\n")
        stdin.flush()
        decode(stdout.readline())
        clock.mark(i + 1)
    return clock.run


def ask_tell(settings: Settings, log: Callable[[str], None]) -> dict[str, dict[str, list[Run]]]:
    """``{sampler: {mode: [run per repeat]}}``."""
    runs: dict[str, dict[str, list[Run]]] = {s: {m: [] for m in MODES} for s in SAMPLERS}
    plan = [
        ("random", settings.random_trials, settings.repeats),
        ("tpe", settings.tpe_trials, settings.tpe_repeats),
    ]
    for sampler, n, repeats in plan:
        for r in range(repeats):
            log(f"ask+tell {SAMPLER_LABELS[sampler]}: repeat {r + 1}/{repeats}, {n} trials/mode")
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            with Worker.spawn(python=PYTHON) as worker, echo_child() as echo:
                for mode in order:
                    study = f"bench-{sampler}-{mode}-{r}"
                    gc.collect()
                    if mode == "in-process":
                        run = run_in_process(sampler, n, settings.batch)
                    elif mode == "echo":
                        run = run_echo(echo, study, sampler, n, settings.batch)
                    else:
                        loop = {
                            "lock-step": run_lock_step,
                            "pipelined": run_pipelined,
                            "batched": run_batched,
                        }[mode]
                        run = loop(worker, study, sampler, n, settings.batch)
                    runs[sampler][mode].append(run)
    return runs


@contextmanager
def one_cpu() -> Iterator[int]:
    """This process, and every child it starts meanwhile, on one CPU (like ``taskset -c``)."""
    saved = os.sched_getaffinity(0)
    cpu = min(saved)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, saved)


def pinned(settings: Settings, log: Callable[[str], None]) -> dict[str, list[float]]:
    """Random in-process and lock-step with the parent and the worker sharing one CPU.

    A lock-step round trip is two wake-ups of a blocked process; on a virtual machine waking an
    idle vCPU costs far more than a switch on the same CPU, and the scheduler often wakes the
    worker on the other (idle) CPU. Pinned together, the two measure the protocol, not that.
    """
    n = min(settings.random_trials, 2000)
    out: dict[str, list[float]] = {"in-process": [], "lock-step": [], "pipelined": []}
    with one_cpu() as cpu:
        for r in range(settings.repeats):
            log(f"pinned to CPU {cpu}: repeat {r + 1}/{settings.repeats}, {n} Random trials")
            with Worker.spawn(python=PYTHON) as worker:
                for mode in ("in-process", "lock-step", "pipelined")[:: 1 if r % 2 else -1]:
                    gc.collect()
                    if mode == "in-process":
                        run = run_in_process("random", n, settings.batch)
                    elif mode == "lock-step":
                        run = run_lock_step(worker, f"pin-{r}", "random", n, settings.batch)
                    else:
                        run = run_pipelined(worker, f"pin-p-{r}", "random", n, settings.batch)
                    out[mode].append(run.per_trial())
    return out


# ---------------------------------------------------------------------------------------------
# The Optuna CLI on SQLite, one process pair per step
# ---------------------------------------------------------------------------------------------


def optuna_cli(settings: Settings, log: Callable[[str], None]) -> list[float]:
    cli = str(Path(PYTHON).with_name("optuna"))
    space = json.dumps({k: json.loads(distribution_to_json(d)) for k, d in DISTRIBUTIONS.items()})
    steps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/cli.db"
        common = ["--storage", storage, "--study-name", "cli", "-q"]
        subprocess.run([cli, "create-study", *common], check=True, capture_output=True)
        for step in range(settings.cli_steps):
            log(f"optuna CLI: step {step + 1}/{settings.cli_steps}")
            t0 = time.perf_counter()
            asked = subprocess.run(
                [
                    cli,
                    "ask",
                    *common,
                    "--sampler",
                    "RandomSampler",
                    "--search-space",
                    space,
                    "-f",
                    "json",
                ],
                check=True,
                capture_output=True,
            )
            trial = json.loads(asked.stdout)
            subprocess.run(
                [
                    cli,
                    "tell",
                    *common,
                    "--trial-number",
                    str(trial["number"]),
                    "--values",
                    str(objective(trial["params"])),
                ],
                check=True,
                capture_output=True,
            )
            steps.append(time.perf_counter() - t0)
    return steps


def sqlite_runs(settings: Settings, log: Callable[[str], None]) -> dict[str, list[float]]:
    """Per-trial seconds on SQLite: in-process Optuna, and the worker when it supports SQLite."""
    n = 20 if settings.quick else 100
    out: dict[str, list[float]] = {"in-process": [], "lock-step": []}
    log(f"SQLite: in-process and worker lock-step, {n} trials each")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(min(settings.repeats, 3)):
            study = optuna.create_study(
                storage=f"sqlite:///{tmp}/in-process.db",
                study_name=f"s{r}",
                sampler=make_sampler("random"),
            )
            t0 = time.perf_counter()
            for _ in range(n):
                trial = study.ask(DISTRIBUTIONS)
                study.tell(trial, objective(trial.params))
            out["in-process"].append((time.perf_counter() - t0) / n)
            try:
                worker = Worker.spawn(storage=f"sqlite:///{tmp}/worker.db", python=PYTHON)
            except WorkerExited:
                log("  the worker does not open sqlite:/// storages (yet): row left out")
                continue
            with worker:
                out["lock-step"].append(
                    run_lock_step(worker, f"s{r}", "random", n, settings.batch).per_trial()
                )
    return out


# ---------------------------------------------------------------------------------------------
# ping throughput, start-up, memory
# ---------------------------------------------------------------------------------------------


def pipelined_frames_per_s(proc: subprocess.Popen[bytes], frames: int, frame: bytes) -> float:
    """Write ``frames`` copies of ``frame`` from a thread while this one reads as many lines."""
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    chunk = 1000

    def write() -> None:
        left = frames
        while left:
            k = min(chunk, left)
            stdin.write(frame * k)
            stdin.flush()
            left -= k

    # The Python client writes its pipe without blocking; this plain writer thread blocks instead.
    was_blocking = os.get_blocking(stdin.fileno())
    os.set_blocking(stdin.fileno(), True)
    writer = threading.Thread(target=write)
    t0 = time.perf_counter()
    writer.start()
    last = b""
    try:
        for _ in range(frames):
            last = stdout.readline()
        elapsed = time.perf_counter() - t0
        writer.join()
    finally:
        os.set_blocking(stdin.fileno(), was_blocking)
    if not last:
        raise RuntimeError("the child closed its stdout before answering every frame")
    return frames / elapsed


def ping_throughput(settings: Settings, log: Callable[[str], None]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"worker": [], "echo": [], "lock-step": []}
    frame = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
    for r in range(settings.repeats):
        log(f"ping: repeat {r + 1}/{settings.repeats}, {settings.pings} frames pipelined")
        with Worker.spawn(python=PYTHON) as worker:
            out["worker"].append(pipelined_frames_per_s(worker.proc, settings.pings, frame))
            k = 2000
            t0 = time.perf_counter()
            for _ in range(k):
                worker.ping()
            out["lock-step"].append((time.perf_counter() - t0) / k)
        with echo_child() as echo:
            out["echo"].append(pipelined_frames_per_s(echo, settings.pings, frame))
    return out


def start_up(settings: Settings, log: Callable[[str], None]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ready": [], "import optuna": [], "python": []}
    log(f"start-up: {settings.startup_repeats} repeats")
    for _ in range(settings.startup_repeats):
        t0 = time.perf_counter()
        worker = Worker.spawn(python=PYTHON)
        out["ready"].append(time.perf_counter() - t0)
        worker.close()
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", "import optuna"], check=True)
        out["import optuna"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([PYTHON, "-c", "pass"], check=True)
        out["python"].append(time.perf_counter() - t0)
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def memory(settings: Settings, log: Callable[[str], None]) -> dict[str, list[float]]:
    """KiB of RSS per idle study: ``n`` studies created in one worker (and in one process)."""
    n = settings.studies
    out: dict[str, list[float]] = {"worker": [], "worker-space": [], "in-process": []}
    for r in range(min(settings.repeats, 3)):
        log(f"memory: repeat {r + 1}, {n} idle studies")
        for key, extra in (("worker", {}), ("worker-space", {"search_space": SPACE})):
            with Worker.spawn(python=PYTHON) as worker:
                worker.create("warm-up", sampler=SAMPLERS["random"], **extra)
                worker.ping()
                before = rss_kib(worker.pid)
                for start in range(0, n, 500):
                    replies = worker.batch(
                        ("create", {"study": f"s{i}", "sampler": SAMPLERS["random"], **extra})
                        for i in range(start, min(n, start + 500))
                    )
                    for reply in replies:
                        unwrap(reply, Any)
                worker.ping()
                out[key].append((rss_kib(worker.pid) - before) / n)
        child = subprocess.run(
            [PYTHON, "-c", STUDY_RSS_CHILD, str(n)], check=True, capture_output=True, text=True
        )
        before, after = map(int, child.stdout.split())
        out["in-process"].append((after - before) / n)
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    values: list[float]
    unit: str
    ratio: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return DASH
    if unit == "s":
        if value >= 1:
            return f"{value:.2f} s"
        if value >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        return f"{value * 1e6:.0f} µs"
    if unit == "/s":
        return f"{value:,.0f} /s"
    if unit == "KiB":
        return f"{value:.1f} KiB"
    return f"{value:g} {unit}"


def spread(values: Sequence[float], unit: str) -> str:
    if len(values) < 2:
        return "(1 run)"
    return f"{fmt(min(values), unit)} {DASH} {fmt(max(values), unit)}"


def ratio(name: str, a: float, b: float) -> str:
    return f"{name} = {a / b:.2f}{X}" if b and b == b and a == a else ""


def mark(met: bool | None) -> str:
    return "" if met is None else ("✅" if met else "❌")


def build_rows(
    settings: Settings,
    runs: dict[str, dict[str, list[Run]]],
    one: dict[str, list[float]],
    cli: list[float],
    sqlite: dict[str, list[float]],
    pings: dict[str, list[float]],
    startup: dict[str, list[float]],
    rss: dict[str, list[float]],
) -> list[Row]:
    rows: list[Row] = []
    per_trial: dict[str, dict[str, list[float]]] = {
        s: {m: [run.per_trial() for run in rs] for m, rs in modes.items()}
        for s, modes in runs.items()
    }
    targets = {
        ("random", "lock-step"): 1.15,
        ("random", "pipelined"): 1.0,
        ("random", "batched"): 1.0,
    }
    for sampler, modes in per_trial.items():
        n = settings.random_trials if sampler == "random" else settings.tpe_trials
        base = statistics.median(modes["in-process"])
        for mode in MODES:
            label = MODE_LABELS[mode].format(batch=settings.batch)
            row = Row(
                f"{SAMPLER_LABELS[sampler]} ask+tell per trial ({n} trials): {label}",
                modes[mode],
                "s",
            )
            if mode == "in-process":
                row.ratio = "baseline"
            else:
                short = mode
                row.ratio = ratio(f"{short}/in-process", row.median, base)
            limit = targets.get((sampler, mode))
            if limit is not None:
                row.target = f"≤ {limit:.2f}{X}"
                row.met = row.median <= limit * base
            rows.append(row)
    one_base = statistics.median(one["in-process"])
    n_one = min(settings.random_trials, 2000)
    rows.append(
        Row(
            f"Random ask+tell per trial ({n_one} trials), parent and worker pinned to one "
            "CPU: in-process Optuna",
            one["in-process"],
            "s",
            ratio="baseline (one CPU)",
        )
    )
    for mode, limit in (("lock-step", 1.15), ("pipelined", 1.0)):
        row = Row(
            f"Random ask+tell per trial ({n_one} trials), parent and worker pinned to one "
            f"CPU: worker {mode}",
            one[mode],
            "s",
            target=f"≤ {limit:.2f}{X}",
        )
        row.ratio = ratio(f"{mode}/in-process", row.median, one_base)
        row.met = row.median <= limit * one_base
        rows.append(row)
    worker_step = statistics.median(per_trial["random"]["lock-step"])
    cli_row = Row(
        "Optuna CLI per step on SQLite (`optuna ask` + `optuna tell`)",
        cli,
        "s",
        ratio=ratio("CLI/worker lock-step (memory)", statistics.median(cli), worker_step),
        target=f"≥ 100{X} worker",
        met=statistics.median(cli) >= 100 * worker_step,
    )
    rows.append(cli_row)
    if sqlite["in-process"]:
        rows.append(
            Row(
                "Random ask+tell per trial on SQLite: in-process Optuna",
                sqlite["in-process"],
                "s",
                ratio="baseline (SQLite)",
            )
        )
    if sqlite["lock-step"]:
        rows.append(
            Row(
                "Random ask+tell per trial on SQLite: worker lock-step",
                sqlite["lock-step"],
                "s",
                ratio=ratio(
                    "worker/in-process",
                    statistics.median(sqlite["lock-step"]),
                    statistics.median(sqlite["in-process"]),
                ),
            )
        )
        cli_row.ratio += "; " + ratio(
            "CLI/worker (SQLite)", statistics.median(cli), statistics.median(sqlite["lock-step"])
        )
    echo_rate = statistics.median(pings["echo"])
    rows.append(
        Row(
            "`ping` pipelined through the worker",
            pings["worker"],
            "/s",
            ratio=ratio("worker/echo", statistics.median(pings["worker"]), echo_rate),
            target="≥ 50,000 /s",
            met=statistics.median(pings["worker"]) >= 50_000,
        )
    )
    rows.append(
        Row(
            "`ping` lines pipelined through the raw echo child",
            pings["echo"],
            "/s",
            ratio="transport floor",
        )
    )
    rows.append(Row("`ping` lock-step round trip (Python client)", pings["lock-step"], "s"))
    import_time = statistics.median(startup["import optuna"])
    ready = statistics.median(startup["ready"])
    rows.append(
        Row(
            "start-up: spawn to `ready` frame",
            startup["ready"],
            "s",
            ratio=ratio("ready/import optuna", ready, import_time),
            target=f"≤ 1.20{X}",
            met=ready <= 1.2 * import_time,
        )
    )
    rows.append(
        Row(
            'start-up: `python -c "import optuna"`', startup["import optuna"], "s", ratio="baseline"
        )
    )
    rows.append(Row('start-up: `python -c "pass"`', startup["python"], "s"))
    rows.append(
        Row(
            f"RSS per idle study, worker ({settings.studies}{X} `create`, Random sampler)",
            rss["worker"],
            "KiB",
            target="≤ 30 KiB",
            met=statistics.median(rss["worker"]) <= 30,
            ratio=ratio(
                "worker/in-process",
                statistics.median(rss["worker"]),
                statistics.median(rss["in-process"]),
            ),
        )
    )
    rows.append(
        Row(
            f"RSS per idle study, worker ({settings.studies}{X} `create` with a 3-param "
            "search space)",
            rss["worker-space"],
            "KiB",
            target="≤ 30 KiB",
            met=statistics.median(rss["worker-space"]) <= 30,
        )
    )
    rows.append(
        Row(
            f"RSS per idle study, in-process Optuna ({settings.studies}{X} `create_study`)",
            rss["in-process"],
            "KiB",
            ratio="baseline",
        )
    )
    return rows


def growth_table(settings: Settings, runs: dict[str, dict[str, list[Run]]]) -> list[str]:
    lines = []
    for sampler, modes in runs.items():
        marks = settings.checkpoints[sampler]
        window = min(100, marks[0])
        header = " | ".join(f"trials {m - window + 1}{DASH}{m}" for m in marks)
        lines += [
            f"**{SAMPLER_LABELS[sampler]}**: mean µs per trial over the last {window} "
            "trials before each mark (median of repeats)",
            "",
            f"| mode | {header} |",
            "|---|" + "---:|" * len(marks),
        ]
        base = [
            statistics.median(r.per_trial(m - window, m) for r in modes["in-process"])
            for m in marks
        ]
        for mode in MODES:
            cells = []
            for m, b in zip(marks, base, strict=True):
                value = statistics.median(r.per_trial(m - window, m) for r in modes[mode])
                cells.append(
                    f"{value * 1e6:.0f}"
                    + ("" if mode == "in-process" else f" ({value / b:.2f}{X})")
                )
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render(settings: Settings, rows: list[Row], growth: list[str], meta: dict[str, str]) -> str:
    lines = [
        f"# optuna-bridge benchmark{' (quick)' if settings.quick else ''}",
        "",
        " · ".join(f"{k}: {v}" for k, v in meta.items()),
        "",
        f"| measurement | median | spread (min {DASH} max) | ratio | target | met |",
        "|---|---:|---|---|---|---|",
    ]
    lines += [
        f"| {r.what} | {fmt(r.median, r.unit)} | {spread(r.values, r.unit)} | {r.ratio} | "
        f"{r.target} | {mark(r.met)} |"
        for r in rows
    ]
    lines += ["", "## Cost per trial as the study grows", "", *growth]
    return "\n".join(lines) + "\n"


def plot(settings: Settings, runs: dict[str, dict[str, list[Run]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2))
    for ax, (sampler, modes) in zip(np.atleast_1d(axes), runs.items(), strict=True):
        n = settings.random_trials if sampler == "random" else settings.tpe_trials
        window = max(settings.batch, n // 50)
        edges = list(range(window, n + 1, window))
        for mode in MODES:
            ys = [
                statistics.median(r.per_trial(e - window, e) for r in modes[mode]) * 1e6
                for e in edges
            ]
            ax.plot(edges, ys, label=mode, marker="." if len(edges) < 60 else None)
        ax.set_title(f"{SAMPLER_LABELS[sampler]}: cost per trial (window of {window})")
        ax.set_xlabel("trials in the study")
        ax.set_ylabel("µs per ask+tell")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "CPU": f"{model}, {os.cpu_count()} cores",
        "Python": platform.python_version(),
        "Optuna": optuna.__version__,
        "msgspec": msgspec.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "results", help="results folder (default: results/)"
    )
    parser.add_argument("--repeats", type=int, help="repeats of each measurement")
    parser.add_argument("--random-trials", type=int, help="trials per Random run")
    parser.add_argument("--tpe-trials", type=int, help="trials per TPE run")
    parser.add_argument("--batch", type=int, default=10, help="B of the batched mode (10)")
    parser.add_argument("--cli-steps", type=int, help="Optuna CLI ask+tell steps")
    parser.add_argument("--studies", type=int, help="idle studies for the RSS measurement")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    settings = Settings.from_args(parser.parse_args(argv))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    runs = ask_tell(settings, log)
    one = pinned(settings, log)
    cli = optuna_cli(settings, log)
    sqlite = sqlite_runs(settings, log)
    pings = ping_throughput(settings, log)
    startup = start_up(settings, log)
    rss = memory(settings, log)
    rows = build_rows(settings, runs, one, cli, sqlite, pings, startup, rss)
    meta = machine()
    meta["run"] = f"{time.perf_counter() - started:.0f} s"
    report = render(settings, rows, growth_table(settings, runs), meta)
    print(report)
    (settings.out / "bench.md").write_text(report)
    raw = {
        "settings": {k: str(v) for k, v in vars(settings).items()},
        "machine": meta,
        "rows": [
            {
                "what": r.what,
                "unit": r.unit,
                "median": r.median,
                "values": r.values,
                "ratio": r.ratio,
                "target": r.target,
                "met": r.met,
            }
            for r in rows
        ],
        "runs": {
            s: {
                m: [
                    {"n": r.marks_n[::10] + r.marks_n[-1:], "t": r.marks_t[::10] + r.marks_t[-1:]}
                    for r in rs
                ]
                for m, rs in modes.items()
            }
            for s, modes in runs.items()
        },
    }
    (settings.out / "bench.json").write_text(json.dumps(raw))
    if settings.plot:
        plot(settings, runs, settings.out / "bench.png")
    log(
        f"written: {settings.out / 'bench.md'}, bench.json"
        + (", bench.png" if settings.plot else "")
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WorkerError as exc:
        sys.exit(f"bench: the worker answered an error: {exc}")
