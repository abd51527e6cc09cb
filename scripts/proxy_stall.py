"""What a stalled gRPC storage proxy costs a worker (issue 29): the reply time and the SIGTERM
exit time while the proxy is stopped with SIGSTOP, for each ``--proxy-timeout``.

    .venv/bin/python scripts/proxy_stall.py [--timeouts 1.5,10]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time

from bridge_worker.client import Worker, WorkerError

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def start_proxy(storage: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge_worker",
            "proxy",
            "--storage",
            storage,
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    return proc, int(json.loads(proc.stdout.readline())["port"])


def measure(port: int, proxy: subprocess.Popen[bytes], timeout_s: float) -> None:
    study = f"s{timeout_s}"
    with Worker.spawn(
        f"grpc://127.0.0.1:{port}", args=["--proxy-timeout", str(timeout_s)]
    ) as worker:
        worker.create(study, search_space=SPACE)
        worker.trials(study)
        proxy.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            try:
                worker.trials(study)
            except WorkerError as exc:
                print(
                    f"--proxy-timeout {timeout_s}: {exc.kind} after "
                    f"{time.monotonic() - started:.2f} s"
                )
            worker.send("trials", {"study": study})
            time.sleep(0.2)
            started = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            status = worker.proc.wait(120)
            print(
                f"--proxy-timeout {timeout_s}: SIGTERM during a stalled call, exit {status} "
                f"after {time.monotonic() - started:.2f} s"
            )
        finally:
            proxy.send_signal(signal.SIGCONT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeouts", default="1.5,10")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proxy, port = start_proxy(f"sqlite:///{tmp}/s.db")
        try:
            for timeout_s in (float(t) for t in args.timeouts.split(",")):
                measure(port, proxy, timeout_s)
        finally:
            proxy.send_signal(signal.SIGCONT)
            proxy.terminate()
            proxy.wait(30)


if __name__ == "__main__":
    main()
