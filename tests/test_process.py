"""The real worker process over real pipes: framings, pipelining, EOF, signals, bad bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, unwrap
from bridge_worker.schema import AskResult
from tests.conftest import PYTHON

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
}


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "info", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def run_session(stdin: bytes, *args: str, timeout: float = 30) -> tuple[list[Any], bytes, int]:
    """Feed ``stdin`` whole, then EOF; return the frames on stdout, stderr and the exit status."""
    proc = start(*args)
    out, err = proc.communicate(stdin, timeout=timeout)
    return [orjson.loads(line) for line in out.splitlines()], err, proc.returncode


def lines(*frames: Any) -> bytes:
    return b"".join(orjson.dumps(f) + b"\n" for f in frames)


def test_ready_comes_first_and_describes_the_worker() -> None:
    frames, _, code = run_session(b"")
    assert code == 0
    (ready,) = frames
    assert ready["jsonrpc"] == "2.0" and ready["method"] == "ready" and "id" not in ready
    params = ready["params"]
    assert params["protocol"] == 1
    assert params["storage"] == "memory"
    assert params["framing"] == "line"
    assert params["max_frame_bytes"] == 16 * 1024 * 1024
    assert isinstance(params["pid"], int)
    assert params["optuna"].startswith("5.")


@pytest.mark.parametrize("framing", ["line", "packet4"])
def test_optimization_over_both_framings(framing: str) -> None:
    with Worker.spawn(framing=framing) as w:
        assert w.ready.framing == framing
        w.create("s", direction="maximize", sampler={"type": "tpe", "seed": 0}, search_space=SPACE)
        for _ in range(12):
            (trial,) = w.ask("s")
            w.tell("s", trial.number, -abs(trial.params["lr"] - 0.01))  # type: ignore[operator]
        (best,) = w.best("s")
        assert best.state == "complete"
        assert len(w.trials("s", states=["complete"])) == 12


def test_pipelined_requests_are_answered_in_order() -> None:
    with Worker.spawn() as w:
        w.create("p", search_space=SPACE, sampler={"type": "random", "seed": 1})
        ids = [w.send("ask", {"study": "p"}) for _ in range(300)]
        replies = [w.receive() for _ in ids]
        assert [r.id for r in replies] == ids
        numbers = [unwrap(r, AskResult).trials[0].number for r in replies]
        assert numbers == list(range(300))


def test_eof_answers_everything_read_then_exits_0() -> None:
    frames, _, code = run_session(
        lines({"id": 1, "method": "ping"}, {"id": 2, "method": "list"})
        + b'{"id":3,"method":"ping"}'
    )
    assert code == 0
    assert [f.get("id") for f in frames] == [None, 1, 2, 3]  # ready, then replies; the last line
    # had no newline and still counted


def test_shutdown_replies_then_exits_0_without_reading_more() -> None:
    frames, _, code = run_session(
        lines({"id": 1, "method": "shutdown"}, {"id": 2, "method": "ping"})
    )
    assert code == 0
    assert frames[1:] == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_stop_an_idle_worker_cleanly(signum: int) -> None:
    with Worker.spawn(stderr=subprocess.PIPE, log_level="info") as w:
        assert w.ping()
        os.kill(w.pid, signum)
        assert w.proc.wait(10) == 0
        assert w.proc.stderr is not None
        err = w.proc.stderr.read()
    assert b"Traceback" not in err
    assert b'"stopped"' in err


@pytest.mark.parametrize("framing", ["line", "packet4"])
def test_oversize_frame_is_rejected_and_the_worker_goes_on(framing: str) -> None:
    with Worker.spawn(framing=framing, args=["--max-frame-bytes", "1000"]) as w:
        big = orjson.dumps({"id": 1, "method": "ping", "params": {"pad": "x" * 5000}})
        w.write_frame(big)
        reply = w.receive()
        assert reply.id is None
        assert reply.error is not None and reply.error.data["kind"] == "frame_too_large"  # type: ignore[union-attr]
        assert w.ping()


def test_garbage_and_invalid_utf8_get_errors_and_the_worker_stays_up() -> None:
    garbage = b'hello\n\xff\xfe\xfd\n{"id":1,"method":"\xc3\x28"}\n'
    stdin = garbage + lines({"id": 2, "method": "ping"})
    frames, err, code = run_session(stdin)
    assert code == 0
    kinds = [f["error"]["data"]["kind"] for f in frames[1:4]]
    assert kinds == ["parse_error", "parse_error", "parse_error"]
    assert frames[4] == {"jsonrpc": "2.0", "id": 2, "result": {"pong": True}}
    assert b"Traceback" not in err


def test_stdout_has_frames_only_and_stderr_json_logs_only() -> None:
    """Optuna warns (a step that does not divide the range) while we work: the warning must land
    in the JSON logs on stderr, never on stdout."""
    space = {**SPACE, "k": {"type": "int", "low": 0, "high": 10, "step": 3}}
    create = {"id": 1, "method": "create", "params": {"study": "w", "search_space": space}}
    asks = [{"id": 10 + i, "method": "ask", "params": {"study": "w"}} for i in range(3)]
    tells = [{"id": 20 + i, "method": "tell", "params": {"study": "w", "number": i, "value": i}}
             for i in range(3)]
    frames, err, code = run_session(lines(create, *asks, *tells, {"id": 30, "method": "ask",
                                                                   "params": {"study": "w"}}))
    assert code == 0
    assert all(f["jsonrpc"] == "2.0" for f in frames)
    assert "result" in frames[-1]
    logs = [orjson.loads(line) for line in err.splitlines()]
    assert all("event" in entry and "level" in entry for entry in logs)
    assert any("divisible" in entry["event"] for entry in logs), logs


def test_parent_gone_ends_the_worker_quietly() -> None:
    proc = start()
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    proc.stdout.readline()  # ready
    proc.stdout.close()  # the parent stops listening
    proc.stdin.write(lines({"id": 1, "method": "ping"}))
    proc.stdin.flush()
    assert proc.wait(10) == 0
    assert b"Traceback" not in proc.stderr.read()
    proc.stdin.close()
    proc.stderr.close()


def test_a_shell_user_can_pipe_frames_into_the_console_script(tmp_path: Path) -> None:
    script = Path(PYTHON).parent / "optuna-bridge"
    frames_in = lines(
        {"id": 1, "method": "create", "params": {"study": "sh", "search_space": SPACE}},
        {"id": 2, "method": "ask", "params": {"study": "sh"}},
    ) + b"this is not json\n"
    result = subprocess.run(
        f"printf '%s' '{frames_in.decode()}' | {script} --log-level error",
        shell=True, capture_output=True, timeout=30, cwd=tmp_path,
    )
    assert result.returncode == 0
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert out[1]["result"]["created"] is True
    assert out[2]["result"]["trials"][0]["number"] == 0
    assert out[3]["error"]["data"]["kind"] == "parse_error"
    assert result.stderr == b""


def test_busy_signal_finishes_the_frame_being_answered() -> None:
    """SIGTERM while a long ask is being answered: its reply still comes whole, then exit 0."""
    proc = start()
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    proc.stdin.write(lines(
        {"id": 1, "method": "create", "params": {"study": "b", "search_space": SPACE,
                                                  "sampler": {"type": "tpe", "seed": 1}}},
        {"id": 2, "method": "ask", "params": {"study": "b", "n": 1000}},
    ))
    proc.stdin.flush()
    assert orjson.loads(proc.stdout.readline())["id"] == 1
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    # (not communicate(): it reads the raw pipe and would skip what readline() buffered)
    reply = orjson.loads(proc.stdout.readline())
    assert reply["id"] == 2 and len(reply["result"]["trials"]) == 1000
    assert proc.stdout.readline() == b""  # nothing after the answered frame
    assert proc.wait(10) == 0
    proc.stdin.close()
    proc.stdout.close()




@pytest.mark.parametrize(("worker_spin", "client_spin"), [("0", 0), ("200", 0), ("0", 500)])
def test_polling_settings_do_not_change_answers(worker_spin: str, client_spin: int) -> None:
    """``--spin-us`` (worker) and ``spin_us`` (client) trade CPU for latency, nothing else."""
    with Worker.spawn(args=["--spin-us", worker_spin], spin_us=client_spin) as worker:
        worker.create("s", sampler={"type": "random", "seed": 4},
                      search_space={"x": {"type": "float", "low": 0, "high": 1}})
        asked = [worker.ask("s")[0] for _ in range(20)]
        for trial in asked:
            worker.tell("s", trial.number, value=trial.params["x"])
        assert [t.number for t in asked] == list(range(20))
        assert worker.best("s")[0].values == [min(t.params["x"] for t in asked)]
        assert worker.shutdown() == 0
