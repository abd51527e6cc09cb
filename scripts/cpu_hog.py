"""Keep every core busy until killed: the load under which `make test-stress` runs the suite.

A flaky test is one whose deadline races the machine; the way to find it before CI does is to run
the suite while something else competes for every core at the same priority, as a shared CI
runner or a developer's build does. Pure Python (no stress-ng needed): one spinning process per
core, all stopped with the parent's process group.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time


def _spin() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--procs",
        type=int,
        default=os.cpu_count() or 2,
        help="spinning processes (default: one per core)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=7200.0,
        help="stop by itself after this long (a safety net; default 2 h)",
    )
    args = parser.parse_args()
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.procs)]
    for p in procs:
        p.start()
    print(f"cpu_hog: {args.procs} spinning processes (pid {os.getpid()})", file=sys.stderr)

    def stop(signum: int, _frame: object) -> None:
        for p in procs:
            p.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(1.0)
    stop(signal.SIGTERM, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
