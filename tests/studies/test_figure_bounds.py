"""No figure can crash or stall the worker: its cost is checked before drawing, and the drawing
runs in a child process with its own memory and time limits
(``bridge_worker.studies.figure_sandbox``)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge_worker.client import SPIN_US, Worker, WorkerError
from bridge_worker.studies import figure_sandbox
from bridge_worker.wire.errors import BridgeError, ErrorKind, invalid_params
from tests.helpers import PYTHON
from tests.races import race_env

FLOAT = {"type": "float", "low": 0, "high": 1}


# ---- the sandbox itself ------------------------------------------------------------------------


def test_a_drawing_returns_its_bytes() -> None:
    assert (
        figure_sandbox.run_isolated(lambda: b"png" * 100_000, memory_bytes=1 << 28, timeout_s=60)
        == b"png" * 100_000
    )


def test_an_error_of_the_drawing_is_raised_as_it_was() -> None:
    def draw() -> bytes:
        raise invalid_params("$.params.kind", "cannot draw that")

    with pytest.raises(BridgeError) as caught:
        figure_sandbox.run_isolated(draw, memory_bytes=1 << 28, timeout_s=60)
    assert caught.value.kind is ErrorKind.INVALID_PARAMS
    assert caught.value.data == {"field": "$.params.kind"}


def test_memory_error_in_the_drawing_is_reported() -> None:
    def draw() -> bytes:
        return bytes(8 << 30)  # 8 GiB: over the child's limit

    with pytest.raises(figure_sandbox.SandboxMemoryError):
        figure_sandbox.run_isolated(draw, memory_bytes=1 << 28, timeout_s=60)


def test_a_drawing_that_crashes_is_reported() -> None:
    def draw() -> bytes:
        os.kill(os.getpid(), signal.SIGSEGV)
        return b""

    with pytest.raises(figure_sandbox.SandboxMemoryError, match="SIGSEGV"):
        figure_sandbox.run_isolated(draw, memory_bytes=1 << 28, timeout_s=60)


def test_a_crashing_drawing_dumps_nothing_on_stderr() -> None:
    """The child inherits faulthandler (pytest and ``python -X faulthandler`` enable it): its
    "Fatal Python error" traceback dump would land on the worker's stderr, which carries only JSON
    log lines. The parent reports the signal; the child says nothing."""
    code = (
        "import os, signal\n"
        "from bridge_worker.studies import figure_sandbox\n"
        "def draw():\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
        "try:\n"
        "    figure_sandbox.run_isolated(draw, memory_bytes=1 << 28, timeout_s=60)\n"
        "except figure_sandbox.SandboxMemoryError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [PYTHON, "-X", "faulthandler", "-c", code], capture_output=True, timeout=120, check=True
    )
    assert b"SIGSEGV" in done.stdout
    assert done.stderr == b""


def test_a_drawing_that_stalls_is_stopped_at_its_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(figure_sandbox.SandboxTimeout):
        figure_sandbox.run_isolated(
            lambda: time.sleep(600) or b"", memory_bytes=1 << 28, timeout_s=0.5
        )
    assert time.monotonic() - started < 60  # the sleeper was killed, not waited for


def test_a_drawing_process_that_cannot_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(figure_sandbox.SandboxMemoryError, match="cannot start"):
        figure_sandbox.run_isolated(lambda: b"", memory_bytes=1 << 28, timeout_s=60)


# ---- through the worker ------------------------------------------------------------------------


def _spawn_capped(address_space: int, *args: str) -> Worker:
    """A worker started under an address-space limit (``RLIMIT_AS``, set in the child)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "warning", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=cap,
    )
    return Worker(proc, "line", SPIN_US, None)


def test_a_figure_over_its_memory_is_a_reply_under_an_address_space_limit() -> None:
    """The worker runs under a 3 GiB address-space cap (as a container would give it); the figure
    process may add 1 MiB, which a 4000 x 4000 canvas (64 MB of pixels) exceeds: the reply says
    so, and the worker answers the next frames."""
    with _spawn_capped(3 << 30, "--max-plot-memory-mib", "1") as worker:
        worker.create("s", search_space={"x": FLOAT, "y": FLOAT})
        worker.add_trials(
            "s", [{"params": {"x": i / 20, "y": (i * 7 % 20) / 20}, "value": i} for i in range(20)]
        )
        for _ in range(2):
            with pytest.raises(WorkerError) as caught:
                worker.plot("s", "contour", "png", width=4000, height=4000)
            assert caught.value.kind == "limit_exceeded"
            assert caught.value.data["limit"] == "max_plot_memory_mib"
            assert "ran out of memory" in str(caught.value)
            assert worker.call("ping", {}) == {"pong": True}
        assert len(worker.trials("s")) == 20


def test_a_figure_over_its_time_is_stopped_and_the_worker_answers_on(tmp_path: Path) -> None:
    """The drawing hangs (a race hook): a real contour of 100 panels took 4-7 s here, and would
    end within the 1 s limit on a machine a few times faster."""
    env = race_env(tmp_path, "draw_hangs")
    with Worker.spawn(args=["--max-plot-seconds", "1"], env=env) as worker:
        worker.create("s", search_space={f"p{i}": FLOAT for i in range(10)})
        for first in (0, 100):  # two frames: 11 values a trial, --max-add-values is 2000
            worker.add_trials(
                "s",
                [
                    {"params": {f"p{i}": ((n * (i + 3)) % 97) / 97 for i in range(10)}, "value": n}
                    for n in range(first, first + 100)
                ],
            )
        started = time.monotonic()
        with pytest.raises(WorkerError) as caught:
            worker.plot("s", "contour", "png")
        assert caught.value.kind == "limit_exceeded"
        assert caught.value.data["limit"] == "max_plot_seconds"
        assert (tmp_path / "draw-started").exists()  # stopped while drawing, not before
        assert time.monotonic() - started < 30
        assert worker.call("ping", {}) == {"pong": True}


def test_panels_over_the_limit_are_refused_before_drawing() -> None:
    with Worker.spawn(args=["--max-plot-panels", "16"]) as worker:
        worker.create("s", search_space={f"p{i}": FLOAT for i in range(5)})
        worker.add_trials("s", [{"params": {f"p{i}": 0.5 for i in range(5)}, "value": 1}])
        with pytest.raises(WorkerError) as caught:
            worker.plot("s", "contour", "png")
        assert caught.value.kind == "limit_exceeded"
        assert caught.value.data["limit"] == "max_plot_panels"
        assert caught.value.data["value"] == 25
        contour = worker.plot("s", "contour", "plotly", params=["p0", "p1", "p2", "p3"])
        assert isinstance(contour, dict)


# ---- figures that would show nothing, defaults, replies over the limit -------------------------


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker.spawn() as spawned:
        spawned.create("empty", search_space={"x": FLOAT, "y": FLOAT})
        spawned.create("one", search_space={"x": FLOAT})
        spawned.add_trials("one", [{"params": {"x": i / 10}, "value": i} for i in range(5)])
        yield spawned


@pytest.mark.parametrize(
    "kind",
    [
        "optimization_history",
        "slice",
        "contour",
        "edf",
        "rank",
        "parallel_coordinate",
        "param_importances",
        "timeline",
        "intermediate_values",
    ],
)
def test_a_figure_of_a_study_without_trials_is_an_error_saying_why(
    worker: Worker, kind: str
) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.plot("empty", kind, "png")
    assert caught.value.kind == "no_completed_trials"
    assert "empty" in str(caught.value)


def test_contour_of_one_parameter_is_an_error_saying_why(worker: Worker) -> None:
    with pytest.raises(WorkerError) as caught:
        worker.plot("one", "contour", "png")
    assert caught.value.kind == "invalid_params"
    assert caught.value.data["field"] == "$.params.params"
    assert "two parameters" in str(caught.value)


def test_format_defaults_to_png(worker: Worker) -> None:
    result = worker.call("plot", {"study": "one", "kind": "slice"})
    assert result["format"] == "png" and result["data"]
    assert "warnings" not in result  # everything drawn


def test_a_bounded_figure_says_what_it_left_out() -> None:
    with Worker.spawn() as spawned:
        spawned.create("s", search_space={"x": FLOAT, "y": FLOAT})
        spawned.add_trials(
            "s",
            [{"params": {"x": (i % 31) / 31, "y": (i % 17) / 17}, "value": i} for i in range(300)],
        )
        result = spawned.call("plot", {"study": "s", "kind": "contour", "format": "plotly"})
        assert result["warnings"] == [
            "contour drawn from 200 of 300 completed trials (evenly spaced by number)"
        ]


def test_a_plotly_figure_over_the_reply_limit_suggests_what_shrinks_it() -> None:
    with Worker.spawn(args=["--max-frame-bytes", "20000"]) as spawned:
        spawned.create("s", search_space={"x": FLOAT})
        for start in range(0, 1000, 200):  # frames under the worker's 20000 bytes
            spawned.add_trials(
                "s", [{"params": {"x": i / 1000}, "value": i} for i in range(start, start + 200)]
            )
        with pytest.raises(WorkerError) as caught:
            spawned.plot("s", "slice", "plotly")
        assert caught.value.data["limit"] == "max_frame_bytes"
        message = str(caught.value)
        assert "smaller" not in message and "png" in message
