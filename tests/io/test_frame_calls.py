"""The fixed cost of a frame in a burst (issue 24): counted in Python calls, not timed, so a busy
machine cannot blur it. A real worker runs under ``cProfile`` twice, with a short and a long
burst of the same frames; the difference divided by the extra frames is what one more frame
costs the whole path (reading loop, framing, decode, dispatch, handler, encode, held replies),
with start-up and the first frames cancelled out."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import optuna
import orjson

from scripts.bench_io import DISTRIBUTIONS, SPACE  # make bench's burst, measured by calls
from tests.helpers import PYTHON

PROFILED_WORKER = textwrap.dedent(
    """
    import cProfile, os, pstats, sys
    from bridge_worker.__main__ import main
    profile = cProfile.Profile()
    status = profile.runcall(main)
    with open(os.environ["CALLS_FILE"], "w") as out:
        out.write(str(pstats.Stats(profile).total_calls))
    sys.exit(status)
    """
)


def _calls(frames: bytes, tmp_path: Path) -> int:
    """Python and C calls the worker's main thread made answering ``frames``."""
    counted = tmp_path / "calls"
    subprocess.run(
        [PYTHON, "-c", PROFILED_WORKER, "--log-level", "warning", "--spin-us", "0"],
        input=frames,
        capture_output=True,
        timeout=300,
        check=True,
        env={**os.environ, "CALLS_FILE": str(counted)},
    )
    return int(counted.read_text())


def _per_extra(short: bytes, long: bytes, extra: int, tmp_path: Path) -> float:
    return (_calls(long, tmp_path) - _calls(short, tmp_path)) / extra


def _pings(count: int) -> bytes:
    return b"".join(b'{"id":%d,"method":"ping"}\n' % i for i in range(count))


def test_a_ping_in_a_burst_costs_at_most_22_calls(tmp_path: Path) -> None:
    """41 calls per ping before (a two-stage decode, a frame split in a Python loop, a depth
    count, five helper calls per frame, a framing call and a hold per reply, two clock reads);
    17 now."""
    per_ping = _per_extra(_pings(1000), _pings(4000), 3000, tmp_path)
    assert per_ping <= 22, per_ping


def _trials(count: int) -> bytes:
    """``make bench``'s burst: asks, then their tells."""
    sampler = {"type": "random", "seed": 1}
    frames: list[dict[str, Any]] = [
        {
            "id": "c",
            "method": "create",
            "params": {"study": "s", "search_space": SPACE, "sampler": sampler},
        }
    ]
    frames += [{"id": i, "method": "ask", "params": {"study": "s"}} for i in range(count)]
    frames += [
        {"id": i, "method": "tell", "params": {"study": "s", "number": i, "value": 1.5}}
        for i in range(count)
    ]
    return b"".join(orjson.dumps(f) + b"\n" for f in frames)


def _in_process_calls(count: int) -> int:
    import cProfile
    import pstats

    def run() -> None:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        asked = [study.ask(DISTRIBUTIONS) for _ in range(count)]
        for trial in asked:
            study.tell(trial, 1.5)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    profile = cProfile.Profile()
    profile.runcall(run)
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined, no-any-return]


def test_a_random_trial_in_a_burst_costs_the_worker_well_under_in_process_optuna(
    tmp_path: Path,
) -> None:
    """Calls per Random trial (ask + tell, 3 params, memory) through the whole worker against
    in-process ``study.ask(space)`` + ``study.tell``: 744 against 1114 before (0.67x), 598 now
    (0.54x: a frame's fixed cost, and the sampler's transform built once per parameter)."""
    worker = _per_extra(_trials(100), _trials(500), 400, tmp_path)
    in_process = (_in_process_calls(500) - _in_process_calls(100)) / 400
    assert worker <= 0.6 * in_process, (worker, in_process)
