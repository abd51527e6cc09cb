"""The real worker process over real pipes: framings, pipelining, EOF, signals, bad bytes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, unwrap
from bridge_worker.wire.schema import AskResult
from tests.helpers import PYTHON, ROOT
from tests.races import race_env, wait_until

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
}


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "info", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
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
    tells = [
        {"id": 20 + i, "method": "tell", "params": {"study": "w", "number": i, "value": i}}
        for i in range(3)
    ]
    frames, err, code = run_session(
        lines(create, *asks, *tells, {"id": 30, "method": "ask", "params": {"study": "w"}})
    )
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
    frames_in = (
        lines(
            {"id": 1, "method": "create", "params": {"study": "sh", "search_space": SPACE}},
            {"id": 2, "method": "ask", "params": {"study": "sh"}},
        )
        + b"this is not json\n"
    )
    result = subprocess.run(
        f"printf '%s' '{frames_in.decode()}' | {script} --log-level error",
        shell=True,
        capture_output=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert out[1]["result"]["created"] is True
    assert out[2]["result"]["trials"][0]["number"] == 0
    assert out[3]["error"]["data"]["kind"] == "parse_error"
    assert result.stderr == b""


def test_busy_signal_finishes_the_frame_being_answered(tmp_path: Path) -> None:
    """SIGTERM while a long ask is being answered: its reply still comes whole, then exit 0.

    The ask pauses at its first parameter (a race hook) while the signal is sent: a fixed sleep
    before the signal could land before the ask began on a loaded machine (then it is answered
    ``worker_stopping``) and after it ended on a fast one (then nothing is proven)."""
    proc = start(env=race_env(tmp_path, "param_waits"))
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    proc.stdin.write(
        lines(
            {
                "id": 1,
                "method": "create",
                "params": {
                    "study": "b",
                    "search_space": SPACE,
                    "sampler": {"type": "tpe", "seed": 1},
                },
            },
            {"id": 2, "method": "ask", "params": {"study": "b", "n": 200}},
        )
    )
    proc.stdin.flush()
    assert orjson.loads(proc.stdout.readline())["id"] == 1
    wait_until((tmp_path / "param-paused").exists, "the ask to begin")
    proc.send_signal(signal.SIGTERM)
    (tmp_path / "go").touch()
    # (not communicate(): it reads the raw pipe and would skip what readline() buffered)
    reply = orjson.loads(proc.stdout.readline())
    assert reply["id"] == 2 and len(reply["result"]["trials"]) == 200
    assert proc.stdout.readline() == b""  # nothing after the answered frame
    assert proc.wait(10) == 0
    proc.stdin.close()
    proc.stdout.close()


@pytest.mark.parametrize(("worker_spin", "client_spin"), [("0", 0), ("200", 0), ("0", 500)])
def test_polling_settings_do_not_change_answers(worker_spin: str, client_spin: int) -> None:
    """``--spin-us`` (worker) and ``spin_us`` (client) trade CPU for latency, nothing else."""
    with Worker.spawn(args=["--spin-us", worker_spin], spin_us=client_spin) as worker:
        worker.create(
            "s",
            sampler={"type": "random", "seed": 4},
            search_space={"x": {"type": "float", "low": 0, "high": 1}},
        )
        asked = [worker.ask("s")[0] for _ in range(20)]
        for trial in asked:
            worker.tell("s", trial.number, value=trial.params["x"])
        assert [t.number for t in asked] == list(range(20))
        assert worker.best("s")[0].values == [min(t.params["x"] for t in asked)]
        assert worker.shutdown() == 0


# ---- first use: storage URLs, logs, a person at a terminal, generic JSON-RPC clients ---------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bogus://x", b"unknown storage scheme 'bogus'"),
        ("sqlite://hpo.db", b"Invalid SQLite URL"),
        ("mysql://user@localhost/db", b"driver for 'mysql' is not installed"),
        ("postgresql+nodriver://user@localhost/db", b"unknown storage scheme"),
    ],
)
def test_a_storage_url_that_can_never_work_exits_2_before_ready(url: str, message: bytes) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "bridge_worker", "--storage", url],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"usage: optuna-bridge" in done.stderr and message in done.stderr


def test_every_stderr_line_has_one_json_style() -> None:
    """Python warnings (here Optuna's) and structlog's own events come out of one renderer."""
    create = {
        "id": 1,
        "method": "create",
        "params": {
            "study": "w",
            "sampler": {"type": "tpe", "consider_magic_clip": True},
            "search_space": {"k": {"type": "int", "low": 0, "high": 10, "step": 3}},
        },
    }
    frames, err, code = run_session(lines(create))
    assert code == 0 and "result" in frames[1]
    loggers = set()
    for line in err.splitlines():
        entry = orjson.loads(line)
        assert line == orjson.dumps(entry), line  # compact: no spaces after separators
        loggers.add(entry.get("logger"))
    assert "py.warnings" in loggers and None in loggers


def test_a_person_at_a_terminal_sees_no_info_logs_by_default() -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    try:
        assert proc.stdout is not None
        assert orjson.loads(proc.stdout.readline())["method"] == "ready"
        os.write(leader, b'{"id":1,"method":"shutdown"}\n')
        assert orjson.loads(proc.stdout.readline())["id"] == 1
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert err == b""  # no "started" info line before ready
    _, piped_err, _ = run_session(b"")
    assert b'"event":"started"' in piped_err  # piped: info, as before
    helped = subprocess.run(
        [PYTHON, "-m", "bridge_worker", "--help"], capture_output=True, timeout=60
    )
    assert b"warning when stdin is a terminal" in b" ".join(helped.stdout.split())


def test_strict_jsonrpc_works_with_a_generic_client_library_unchanged() -> None:
    """jsonrpcclient (PyPI) builds requests and parses replies; it knows nothing of this worker
    and raises on any frame that is not the reply to its request."""
    from jsonrpcclient import Error, Ok, notification_json, parse_json, request_json

    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--jsonrpc", "strict"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(text: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(text.encode() + b"\n")
        proc.stdin.flush()

    def call(method: str, params: dict[str, Any] | None = None) -> Ok | Error:
        assert proc.stdout is not None
        send(request_json(method, params=params))
        return parse_json(proc.stdout.readline())

    try:
        assert call("ping") == Ok({"pong": True}, 1)
        send(notification_json("tell", params={"study": "nobody", "number": 0, "value": 1.0}))
        created = call("create", {"study": "g", "search_space": SPACE})
        assert isinstance(created, Ok) and created.result["created"] is True
        asked = call("ask", {"study": "g"})
        assert isinstance(asked, Ok)
        number = asked.result["trials"][0]["number"]
        assert isinstance(call("tell", {"study": "g", "number": number, "value": 0.5}), Ok)
        failed = call("ask", {"study": "nobody"})
        assert isinstance(failed, Error) and failed.data["kind"] == "study_not_found"
        send('{"id":9,"method":"ping"}')
        unversioned = orjson.loads(proc.stdout.readline())
        assert unversioned["id"] == 9
        assert unversioned["error"]["data"]["kind"] == "invalid_request"
        out, err = proc.communicate(b"", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b""
    assert proc.returncode == 0
    assert b'"event":"notification_failed"' in err and b"nobody" not in err


def test_the_readme_generic_client_example_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### A generic JSON-RPC client", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, timeout=60, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"0\n"
