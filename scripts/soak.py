"""``make soak``: a long pipelined run against one worker, watching memory and throughput.

Mixed ``ping`` / ``ask`` / ``tell`` frames on several in-memory studies (RandomSampler), pipelined
with at most ``--window`` frames in flight (so neither pipe ever fills both ways). RSS is sampled
from ``/proc/<pid>/status``; every reply is checked (id in order, no error). The report compares
the first and last quarter: frames/s per quarter and RSS growth per stored trial (the only thing
that should grow: Optuna keeps every trial in memory).

    make soak                               # 1,000,000 frames
    make soak SOAK_ARGS="--frames 200000"
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
SPACE = {
    "x": {"type": "float", "low": -5, "high": 5},
    "k": {"type": "int", "low": 0, "high": 9},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]},
}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(frames: int, studies: int, window: int, python: str = sys.executable) -> dict[str, object]:
    proc = subprocess.Popen(
        [python, "-m", "bridge_worker", "--log-level", "warning"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    stdout.readline()  # ready
    names = [f"soak-{i}" for i in range(studies)]
    for i, name in enumerate(names):
        stdin.write(
            orjson.dumps(
                {
                    "id": -1 - i,
                    "method": "create",
                    "params": {
                        "study": name,
                        "search_space": SPACE,
                        "sampler": {"type": "random", "seed": i},
                    },
                }
            )
            + b"\n"
        )
    stdin.flush()
    for _ in names:
        assert b'"result"' in stdout.readline()
    pending: dict[str, collections.deque[int]] = {n: collections.deque() for n in names}
    next_number = dict.fromkeys(names, 0)
    trials = 0
    sent = received = 0
    slices: list[tuple[float, int, int, int]] = []  # (time, frames answered, rss KiB, trials)
    started = time.perf_counter()
    slice_every = max(frames // 40, 1)
    errors = 0

    def frame(i: int) -> bytes:
        nonlocal trials
        name = names[i % studies]
        kind = i % 5
        if kind in (0, 1):
            next_number[name] += 1
            pending[name].append(next_number[name] - 1)
            trials += 1
            return b'{"id":%d,"method":"ask","params":{"study":"%s"}}\n' % (i, name.encode())
        if kind in (2, 3) and pending[name]:
            number = pending[name].popleft()
            return b'{"id":%d,"method":"tell","params":{"study":"%s","number":%d,"value":%f}}\n' % (
                i,
                name.encode(),
                number,
                (number % 97) / 7,
            )
        return b'{"id":%d,"method":"ping"}\n' % i

    while received < frames:
        chunk = bytearray()
        while sent < frames and sent - received < window:
            chunk += frame(sent)
            sent += 1
        if chunk:
            stdin.write(chunk)
            stdin.flush()
        # read half a window back before writing more
        target = min(frames, received + max(window // 2, 1))
        while received < target:
            line = stdout.readline()
            reply = orjson.loads(line)
            if reply.get("id") != received or "error" in reply:
                errors += 1
            received += 1
            if received % slice_every == 0:
                slices.append((time.perf_counter() - started, received, rss_kib(proc.pid), trials))
    stdin.close()
    code = proc.wait(60)
    seconds = time.perf_counter() - started
    quarter = max(len(slices) // 4, 1)

    def rate(part: list[tuple[float, int, int, int]], before: tuple[float, int, int, int]) -> float:
        return (part[-1][1] - before[1]) / max(part[-1][0] - before[0], 1e-9)

    first, last = slices[:quarter], slices[-quarter:]
    zero = (0.0, 0, slices[0][2], 0)
    rss_growth = last[-1][2] - first[-1][2]
    trial_growth = last[-1][3] - first[-1][3]
    return {
        "frames": frames,
        "studies": studies,
        "window": window,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "errors": errors,
        "exit_code": code,
        "first_quarter_fps": rate(first, zero),
        "last_quarter_fps": rate(last, slices[-quarter - 1] if len(slices) > quarter else zero),
        "rss_start_mib": slices[0][2] / 1024,
        "rss_end_mib": slices[-1][2] / 1024,
        "rss_max_mib": max(s[2] for s in slices) / 1024,
        "trials": trials,
        "rss_growth_per_trial_kib": rss_growth / max(trial_growth, 1),
        "slices": [(round(t, 2), n, r, k) for t, n, r, k in slices],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--window", type=int, default=2000, help="frames in flight at most")
    args = parser.parse_args(argv)
    r = run(args.frames, args.studies, args.window)
    print(
        f"soak: {r['frames']:,} frames on {r['studies']} studies (window {r['window']}) in "
        f"{r['seconds']:.1f} s = {r['frames_per_s']:,.0f} frames/s; errors {r['errors']}; "
        f"exit {r['exit_code']}"
    )
    print(
        f"throughput: first quarter {r['first_quarter_fps']:,.0f} frames/s, last quarter "
        f"{r['last_quarter_fps']:,.0f} frames/s"
    )
    print(
        f"RSS: start {r['rss_start_mib']:.1f} MiB, end {r['rss_end_mib']:.1f} MiB, max "
        f"{r['rss_max_mib']:.1f} MiB; {r['trials']:,} trials stored; growth from the first to "
        f"the last quarter {r['rss_growth_per_trial_kib']:.2f} KiB per stored trial"
    )
    print("slices (s, frames, RSS KiB, trials):")
    for s in r["slices"]:  # type: ignore[attr-defined]
        print(f"  {s}")
    return 0 if r["errors"] == 0 and r["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
