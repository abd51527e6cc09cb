"""The frames that cost the most per byte sent, measured on a real worker over pipes.

Each case starts a fresh worker, prepares a study (not timed), sends one costly frame, and reports
its wall time, the worker's CPU seconds (from /proc) and how much its peak RSS grew, next to the
bytes the parent sent. Cases are run at the default operator limits (the worst a parent can do
without the operator raising a limit); ``--over`` adds cases beyond them, which the worker must
refuse with ``limit_exceeded`` at once.

    .venv/bin/python scripts/frame_costs.py [--storage memory|sqlite] [--only NAME] [--over]

The README's table "Costly frames" comes from this script.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bridge_worker.client import Worker
from bridge_worker.wire.limits import Limits

LIMITS = Limits()
TOLD = {"n": 2000}
"""Trials in the studies of the importance / export / delete / import cases (``--trials``)."""
TICKS = os.sysconf("SC_CLK_TCK")


def floats(n: int) -> dict[str, Any]:
    return {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(n)}


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Case:
    name: str
    prepare: Callable[[Worker], None]
    frame: Callable[[], Any]
    args: tuple[str, ...] = ()


def create(
    w: Worker, study: str, space: dict[str, Any], sampler: dict[str, Any], told: int = 0
) -> None:
    w.create(study, search_space=space, sampler=sampler)
    batch = max(1, min(200, LIMITS.max_ask_values // max(1, len(space))))
    for start in range(0, told, batch):
        asked = w.ask(study, n=min(batch, told - start))
        for trial in asked:
            value = sum(v for v in trial.params.values() if isinstance(v, float))
            w.send("tell", {"study": study, "number": trial.number, "value": float(value)})
        for _ in asked:
            w.receive()


def ask(n: int) -> Callable[[], Any]:
    return lambda: {"method": "ask", "params": {"study": "s", "n": n}}


_SNAPSHOT: dict[str, Any] = {}


def _keep_snapshot(w: Worker, told: int, under: str | None = None) -> None:
    """A snapshot of a study with ``told`` trials, made in memory (fast) and kept; with
    ``under``, also imported into this worker's storage under that name."""
    with Worker.spawn(log_level="error") as maker:
        create(maker, "s", floats(10), {"type": "random", "seed": 1}, told=told)
        maker.send("export", {"study": "s"})
        _SNAPSHOT["s"] = orjson.loads(maker.read_payload())["result"]["snapshot"]
    if under is not None:
        w.send("import", {"snapshot": _SNAPSHOT["s"], "study": under})
        assert "result" in orjson.loads(w.read_payload())


def cases(over: bool) -> list[Case]:
    n_values = LIMITS.max_ask_values
    ei_params = LIMITS.max_ei_candidates // 24
    big_choices = [
        f"choice-{i:05d}-" + "x" * (LIMITS.max_choice_length - 13)
        for i in range(LIMITS.max_choices)
    ]
    attrs = {f"k{i}": "v" * 100 for i in range(LIMITS.max_user_attrs)}
    random1 = {"type": "random", "seed": 1}
    tpe = {"type": "tpe", "seed": 1}
    result = [
        Case(
            f"ask n={LIMITS.max_ask} x {n_values // LIMITS.max_ask} params, random",
            lambda w: create(w, "s", floats(n_values // LIMITS.max_ask), random1),
            ask(LIMITS.max_ask),
        ),
        Case(
            f"ask n=100 x {n_values // 100} params, TPE, 100 told",
            lambda w: create(w, "s", floats(n_values // 100), tpe, told=100),
            ask(100),
        ),
        Case(
            f"ask n=100 x {n_values // 100} params, TPE, 1000 told",
            lambda w: create(w, "s", floats(n_values // 100), tpe, told=1000),
            ask(100),
        ),
        Case(
            f"ask n=2 x {ei_params} params, TPE, 30 told",
            lambda w: create(w, "s", floats(ei_params), tpe, told=30),
            ask(2),
        ),
        Case(
            f"ask n=2 x {ei_params} params, TPE multivariate, 30 told",
            lambda w: create(w, "s", floats(ei_params), {**tpe, "multivariate": True}, told=30),
            ask(2),
        ),
        Case(
            f"ask n=1 x 10 params, TPE n_ei_candidates={LIMITS.max_ei_candidates // 10}, "
            "multivariate, 300 told",
            lambda w: create(
                w,
                "s",
                floats(10),
                {**tpe, "multivariate": True, "n_ei_candidates": LIMITS.max_ei_candidates // 10},
                told=300,
            ),
            ask(1),
        ),
        Case(
            "ask n=10, TPE, categorical max_choices x max_choice_length, 100 told",
            lambda w: create(
                w, "s", {"c": {"type": "categorical", "choices": big_choices}}, tpe, told=100
            ),
            ask(10),
        ),
        Case(
            "ask n=1, bruteforce, int of max_bruteforce_candidates values, 20 told",
            lambda w: create(
                w,
                "s",
                {"k": {"type": "int", "low": 0, "high": LIMITS.max_bruteforce_candidates - 1}},
                {"type": "bruteforce", "seed": 1},
                told=20,
            ),
            ask(1),
        ),
        Case(
            f"importance, {TOLD['n']} told x 10 params",
            lambda w: _keep_snapshot(w, told=TOLD["n"], under="s"),
            lambda: {"method": "importance", "params": {"study": "s"}},
        ),
        Case(
            "set_attrs, max_user_attrs attrs",
            lambda w: create(w, "s", floats(1), random1),
            lambda: {"method": "set_attrs", "params": {"study": "s", "user_attrs": attrs}},
        ),
        Case(
            "batch of max_batch asks x 10 params, random",
            lambda w: create(w, "s", floats(10), random1),
            lambda: [
                {"jsonrpc": "2.0", "id": i, "method": "ask", "params": {"study": "s"}}
                for i in range(LIMITS.max_batch)
            ],
        ),
        Case(
            f"export, {TOLD['n']} told x 10 params",
            lambda w: _keep_snapshot(w, told=TOLD["n"], under="s"),
            lambda: {"method": "export", "params": {"study": "s"}},
        ),
        Case(
            "batch of 100 exports, 200 told x 10 params",
            lambda w: create(w, "s", floats(10), random1, told=200),
            lambda: [
                {"jsonrpc": "2.0", "id": i, "method": "export", "params": {"study": "s"}}
                for i in range(100)
            ],
        ),
        Case(
            f"delete, {TOLD['n']} told x 10 params (imported)",
            lambda w: _keep_snapshot(w, told=TOLD["n"], under="s"),
            lambda: {"method": "delete", "params": {"study": "s"}},
        ),
        Case(
            f"import, snapshot of {TOLD['n']} told x 10 params",
            lambda w: _keep_snapshot(w, told=TOLD["n"]),
            lambda: {"method": "import", "params": {"snapshot": _SNAPSHOT["s"], "study": "copy"}},
        ),
    ]
    if over:
        result += [
            Case(
                "create, bruteforce, int of 10^8 values (over the limit)",
                lambda w: None,
                lambda: {
                    "method": "create",
                    "params": {
                        "study": "b",
                        "sampler": {"type": "bruteforce"},
                        "search_space": {"k": {"type": "int", "low": 0, "high": 10**8}},
                    },
                },
            ),
            Case(
                "ask n=1000 x 1000 params (over the limit)",
                lambda w: create(w, "s", floats(1000), random1),
                ask(1000),
            ),
        ]
    return result


def run(case: Case, storage: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = {
            "memory": "memory",
            "sqlite": f"sqlite:///{tmp}/c.db",
            "journal": f"journal:///{tmp}/c.log",
        }[storage]
        with Worker.spawn(url, args=list(case.args), log_level="error") as w:
            case.prepare(w)
            frame = case.frame()
            if isinstance(frame, dict):
                frame = {"jsonrpc": "2.0", "id": "measured", **frame}
            payload = orjson.dumps(frame)
            pid = w.pid
            cpu0, rss0 = cpu_seconds(pid), peak_rss_mib(pid)
            start = time.perf_counter()
            w.write_frame(payload)
            raw = w.read_payload()
            wall = time.perf_counter() - start
            cpu, rss = cpu_seconds(pid) - cpu0, peak_rss_mib(pid) - rss0
            outcome = _outcome(orjson.loads(raw))
            return {
                "case": case.name,
                "bytes": len(payload),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "peak_rss_growth_mib": round(rss, 1),
                "reply_bytes": len(raw),
                "outcome": outcome,
            }


def _outcome(reply: Any) -> str:
    replies = reply if isinstance(reply, list) else [reply]
    kinds = sorted({r["error"]["data"]["kind"] for r in replies if "error" in r})
    return ",".join(kinds) or "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=("memory", "sqlite", "journal"), default="memory")
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--over", action="store_true", help="add cases beyond the limits")
    parser.add_argument(
        "--trials",
        type=int,
        default=2000,
        help="trials of the importance/export/delete/import studies",
    )
    args = parser.parse_args()
    TOLD["n"] = args.trials
    print(f"storage={args.storage}  limits={LIMITS}")
    print(f"{'case':<72} {'bytes':>9} {'wall s':>7} {'cpu s':>6} {'+MiB':>7} {'reply':>9}  outcome")
    for case in cases(args.over):
        if args.only and args.only not in case.name:
            continue
        r = run(case, args.storage)
        print(
            f"{r['case']:<72} {r['bytes']:>9} {r['wall_s']:>7} {r['cpu_s']:>6} "
            f"{r['peak_rss_growth_mib']:>7} {r['reply_bytes']:>9}  {r['outcome']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
