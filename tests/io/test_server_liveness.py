"""The worker always answers: whatever the parent does with stderr and stdout, a signal is honoured
within 2 s, a vanished parent is noticed before the next frame, each reply leaves as soon as it is
made, and a frame over ``--frame-budget`` ends the worker with its own exit status."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import queue
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import PYTHON
from tests.races import race_env, wait_until

SIGNAL_DEADLINE_S = 2.0
MARGIN_S = 1.5
"""A loaded 2-core machine delays process start-up and scheduling; the bound is 2 s, the
assertion allows this much more."""

LONG_FRAMES = ("--max-ask-values", "100000")
"""Long asks are what these tests need; the operator limit would refuse them."""

WIDE = {f"p{i}": {"type": "float", "low": 0, "high": 1} for i in range(100)}
"""100 parameters: ``ask n=200`` with random sampling takes about a second."""


def lines(*frames: Any) -> bytes:
    return b"".join(orjson.dumps(f) + b"\n" for f in frames)


_REPLIES: dict[int, queue.Queue[bytes]] = {}
"""Lines read from each worker's stdout by a thread (``select`` cannot see what a buffered reader
already holds, so the test never waits on the pipe itself)."""


def spawn(
    *args: str, stderr: Any = subprocess.DEVNULL, read: bool = True, **kwargs: Any
) -> subprocess.Popen[bytes]:
    """Start a worker and read its ``ready``; with ``read``, a thread collects its replies."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", *LONG_FRAMES, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        **kwargs,
    )
    assert proc.stdout is not None
    ready = orjson.loads(proc.stdout.readline())
    assert ready["method"] == "ready"
    if read:
        replies: queue.Queue[bytes] = queue.Queue()
        _REPLIES[proc.pid] = replies
        stdout = proc.stdout

        def pump() -> None:
            for line in iter(stdout.readline, b""):
                replies.put(line)
            replies.put(b"")

        threading.Thread(target=pump, daemon=True).start()
    return proc


def send(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.flush()


def read_reply(proc: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    """The next reply, or None at EOF."""
    if proc.pid not in _REPLIES:  # nobody else reads this worker's stdout
        assert proc.stdout is not None
        line = proc.stdout.readline()
        return orjson.loads(line) if line else None
    try:
        line = _REPLIES[proc.pid].get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no reply within {timeout} s") from None
    return orjson.loads(line) if line else None


def wait_read_by_worker(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the worker has taken every byte sent from its stdin pipe: the frames are in its
    hands (the first one being answered), whatever the machine's load (a fixed sleep raced it)."""
    assert proc.stdin is not None
    pending = array.array("i", [0])
    deadline = time.monotonic() + timeout
    while True:
        fcntl.ioctl(proc.stdin.fileno(), termios.FIONREAD, pending)
        if pending[0] == 0:
            return
        assert time.monotonic() < deadline, f"the worker left {pending[0]} bytes unread"
        time.sleep(0.01)


def read_until_eof(proc: subprocess.Popen[bytes]) -> list[bytes]:
    lines_read = []
    while line := _REPLIES[proc.pid].get(timeout=30):
        lines_read.append(line)
    return lines_read


def create_wide(proc: subprocess.Popen[bytes]) -> None:
    send(
        proc,
        lines(
            {
                "id": "c",
                "method": "create",
                "params": {
                    "study": "w",
                    "search_space": WIDE,
                    "sampler": {"type": "random", "seed": 0},
                },
            }
        ),
    )
    assert "result" in read_reply(proc)


def long_ask(request_id: Any, n: int = 200) -> dict[str, Any]:
    return {"id": request_id, "method": "ask", "params": {"study": "w", "n": n}}


def close_all(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(BrokenPipeError):
                stream.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# ---- logging never blocks and never kills ---------------------------------------------------


def failing_frames(count: int) -> bytes:
    """Requests that fail (no such study), each logged at debug level with its long study name."""
    name = "missing-" + "x" * 500
    return lines(*({"id": i, "method": "ask", "params": {"study": name}} for i in range(count)))


def test_a_closed_stderr_costs_log_lines_never_replies() -> None:
    """The parent closes its end of stderr before the worker logs anything (issue 18, item 1)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "debug"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    proc.stderr.close()
    out, _ = proc.communicate(failing_frames(50) + lines({"id": "p", "method": "ping"}), timeout=60)
    frames = [orjson.loads(line) for line in out.splitlines()]
    assert frames[0]["method"] == "ready"
    assert [f["error"]["data"]["kind"] for f in frames[1:51]] == ["study_not_found"] * 50
    assert frames[51] == {"jsonrpc": "2.0", "id": "p", "result": {"pong": True}}
    assert proc.returncode == 0


def test_stderr_closed_at_start_up_is_not_reused_for_a_database(tmp_path: Any) -> None:
    """fd 2 closed when the worker starts: logs go nowhere, and the SQLite file that would have
    become fd 2 is not written to by the logger."""
    db = tmp_path / "s.db"
    proc = subprocess.Popen(
        [PYTHON, "-m", "bridge_worker", "--log-level", "debug", "--storage", f"sqlite:///{db}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(2),
    )
    create = {"id": 1, "method": "create", "params": {"study": "s", "search_space": WIDE}}
    out, _ = proc.communicate(lines(create) + failing_frames(20), timeout=60)
    frames = [orjson.loads(line) for line in out.splitlines()]
    assert frames[1]["result"]["created"] is True
    assert len(frames) == 22 and proc.returncode == 0
    assert b"study_not_found" not in db.read_bytes()


def test_an_undrained_stderr_never_blocks_replies() -> None:
    """stderr is a pipe nobody reads while 1000 failing frames are answered (issue 18, item 2);
    once the parent reads stderr again, the next log line says how many lines were lost."""
    proc = spawn("--log-level", "debug", stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    writer = threading.Thread(target=send, args=(proc, failing_frames(1000)))
    writer.start()
    started = time.monotonic()
    kinds = [read_reply(proc, timeout=30)["error"]["data"]["kind"] for _ in range(1000)]
    writer.join()
    assert kinds == ["study_not_found"] * 1000
    assert time.monotonic() - started < 30
    collected: list[bytes] = []
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: collected.extend(iter(stderr.readline, b"")))
    reader.start()
    # the sink writes what it holds, and the next line it writes carries the count (waited for:
    # a fixed 0.5 s raced the sink's thread on a loaded machine)
    deadline = time.monotonic() + 60
    while not any(b'"log_lines_dropped"' in line for line in list(collected)):
        assert time.monotonic() < deadline, "no log_lines_dropped record"
        time.sleep(0.01)
    send(proc, failing_frames(1))
    assert read_reply(proc)["error"]["data"]["kind"] == "study_not_found"
    proc.stdin.close()  # type: ignore[union-attr]
    assert proc.wait(10) == 0
    reader.join(10)
    records = [orjson.loads(line) for line in collected]
    dropped = [r for r in records if r["event"] in ("log_lines_dropped", "log_lines_dropped_total")]
    assert dropped and all(r["count"] > 0 for r in dropped)
    proc.stdout.close()
    proc.stderr.close()


# ---- signals honoured within 2 s --------------------------------------------------------------


def _wait_full(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the worker's stdout pipe holds at least half its capacity and takes no more
    for 0.2 s: the worker is blocked on it (a fixed sleep could end before a loaded machine
    filled it). A pipe of small writes is full well below its capacity (a write that does not
    fit the last page takes a page of its own), so "full" is "no longer growing" (a worker only
    starved that long is signalled before it blocks: the test is weaker then, never wrong)."""
    assert proc.stdout is not None
    capacity = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    held = array.array("i", [0])
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while True:
        fcntl.ioctl(proc.stdout.fileno(), termios.FIONREAD, held)
        if held[0] != last:
            last, since = held[0], time.monotonic()
        elif held[0] >= capacity // 2 and time.monotonic() - since >= 0.2:
            return
        assert time.monotonic() < deadline, f"the stdout pipe holds only {held[0]} bytes"
        time.sleep(0.01)


def test_sigterm_is_honoured_while_stdout_is_full() -> None:
    """The parent stops reading stdout; the worker blocks on it, and SIGTERM still ends it within
    2 s (issue 18, item 3: it was still running 15 s later)."""
    proc = spawn(read=False)
    pings = lines(*({"id": i, "method": "ping"} for i in range(20_000)))
    threading.Thread(target=lambda: _quietly(send, proc, pings), daemon=True).start()
    _wait_full(proc)  # the stdout pipe (64 KiB) is full long before 20 000 replies
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(SIGNAL_DEADLINE_S + MARGIN_S) == 0
    assert time.monotonic() - sent < SIGNAL_DEADLINE_S + MARGIN_S
    close_all(proc)


@pytest.mark.timeout(900)  # three workers' long asks: minutes on a busy machine
def test_sigterm_between_the_items_of_a_batch() -> None:
    """Items not started when the signal came are answered ``worker_stopping``; the batch's
    reply comes after the item being answered (a batch of 10 long asks used to end 193 s later)."""
    proc = spawn()
    create_wide(proc)
    send(proc, orjson.dumps([long_ask(i) for i in range(20)]) + b"\n")
    wait_read_by_worker(proc)
    proc.send_signal(signal.SIGTERM)
    batch = read_reply(proc, timeout=600)
    assert [r["id"] for r in batch] == list(range(20))
    done = [r for r in batch if "result" in r]
    stopped = [r for r in batch if "error" in r]
    # Usually the first item is being answered when the signal lands and completes; on a busy
    # machine the signal can land after the worker read the batch but before it started item 0,
    # and then every item is one not started (a fresh CI run saw 0 done).
    assert len(done) < 20
    assert batch[: len(done)] == done  # items ran in order; the ones after the signal did not
    assert {r["error"]["data"]["kind"] for r in stopped} == {"worker_stopping"}
    assert {r["error"]["code"] for r in stopped} == {-32011}
    assert read_reply(proc) is None  # EOF: nothing after the batch
    _assert_one_long_ask_of_work(proc)
    close_all(proc)


def _assert_one_long_ask_of_work(proc: subprocess.Popen[bytes]) -> None:
    """The worker exits 0 having spent the CPU of about one long ask (the one being answered when
    the signal came), not of the frames queued behind it. CPU seconds, not wall time: a wall-clock
    bound from a baseline measured a moment earlier raced the load's swings."""
    status, spent = _exit_and_cpu_seconds(proc)
    assert status == 0
    start_up = _cpu_seconds(asks=0)
    one_ask = _cpu_seconds(asks=1, n=200) - start_up
    assert spent < start_up + 2.5 * one_ask, (spent, start_up, one_ask)


@pytest.mark.timeout(900)  # three workers' long asks: minutes on a busy machine
def test_sigterm_with_long_frames_queued_behind_the_current_one() -> None:
    """The frame being answered finishes; the queued ones get no work."""
    proc = spawn()
    create_wide(proc)
    send(proc, lines(*(long_ask(i) for i in range(6))))
    wait_read_by_worker(proc)
    proc.send_signal(signal.SIGTERM)
    replies = []
    while (reply := read_reply(proc, timeout=600)) is not None:
        replies.append(reply)
    # [0]: the signal landed while frame 0 was being answered; []: it landed after the worker
    # read the frames but before it started frame 0 (a fresh CI run saw it), so none was started.
    assert [r["id"] for r in replies] in ([0], [])
    _assert_one_long_ask_of_work(proc)
    close_all(proc)


@pytest.mark.timeout(900)  # three workers' long asks: minutes on a busy machine
def test_a_vanished_parent_is_noticed_before_the_next_frame() -> None:
    """5 long asks queued, then the parent goes: the worker stops after the one it was answering
    (it used to spend the CPU of all five before noticing)."""
    proc = spawn(read=False)
    create_wide(proc)
    send(proc, lines(*(long_ask(i, n=300) for i in range(5))))
    wait_read_by_worker(proc)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stdin.close()  # type: ignore[union-attr]
    status, spent = _exit_and_cpu_seconds(proc)
    assert status == 0
    # CPU seconds, not wall time: what the worker spent does not depend on the machine's load
    # (a wall-clock bound from a baseline taken a moment later raced its swings)
    start_up = _cpu_seconds(asks=0)
    one_ask = _cpu_seconds(asks=1) - start_up
    assert spent < start_up + 2.5 * one_ask, (spent, start_up, one_ask)


def _cpu_seconds(asks: int, n: int = 300) -> float:
    """The CPU a worker spends to start, create the wide study, answer ``asks`` long asks, end."""
    proc = spawn()
    create_wide(proc)
    for i in range(asks):
        send(proc, lines(long_ask(i, n=n)))
        read_reply(proc, timeout=600)
    proc.stdin.close()  # type: ignore[union-attr]
    status, spent = _exit_and_cpu_seconds(proc)
    assert status == 0
    close_all(proc)
    return spent


def _exit_and_cpu_seconds(proc: subprocess.Popen[bytes], timeout: float = 600) -> tuple[int, float]:
    """Reap the worker with ``wait4``: its exit status and the CPU seconds it used."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        assert time.monotonic() < deadline, "the worker did not exit"
        time.sleep(0.02)


def test_each_reply_is_written_before_the_next_frame_is_answered(tmp_path: Path) -> None:
    """Frames that arrive together: the reply to the first is out while the second is still being
    computed (replies of one read used to be written together, and lost together on kill -9).

    The second frame is a long ask (a quick call's reply may share a write with the one before,
    in memory) held at its first parameter (a race hook) until the first reply was read, so
    "still being computed" holds on any machine (timing the two replies against each other raced
    a busy machine, and a fixed 1 s for the first reply before that)."""
    proc = spawn(env=race_env(tmp_path, "param_waits"))
    create_wide(proc)
    send(proc, lines({"id": "fast", "method": "ping"}, long_ask("slow", n=300)))
    wait_until((tmp_path / "param-paused").exists, "the slow ask to begin")
    # the hook holds the ask up to 60 s: a reply held until the ask was answered misses this
    assert read_reply(proc, timeout=30)["id"] == "fast"
    (tmp_path / "go").touch()
    assert read_reply(proc)["id"] == "slow"
    close_all(proc)


@pytest.mark.timeout(900)  # 300 SQLite trials and their tells: minutes on a busy machine
def test_kill_9_loses_no_acknowledged_tell(tmp_path: Any) -> None:
    """Every ``tell`` the parent saw acknowledged is stored, and every ``tell`` stored before the
    kill was acknowledged except those of the group being answered (issue 18, item 4)."""
    import optuna

    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    proc = spawn("--storage", url)
    space = {"x": {"type": "float", "low": 0, "high": 1}}
    send(
        proc,
        lines(
            {
                "id": "c",
                "method": "create",
                "params": {"study": "k", "search_space": space, "sampler": {"type": "random"}},
            }
        ),
    )
    read_reply(proc)
    send(proc, lines({"id": "a", "method": "ask", "params": {"study": "k", "n": 300}}))
    # hang bounds, not speed measurements: 300 SQLite inserts took over 60 s on a busy machine
    numbers = [t["number"] for t in read_reply(proc, timeout=600)["result"]["trials"]]
    send(
        proc,
        lines(
            *(
                {"id": n, "method": "tell", "params": {"study": "k", "number": n, "value": 0.5}}
                for n in numbers
            )
        ),
    )
    acknowledged = [read_reply(proc, timeout=600)["id"] for _ in range(100)]
    proc.kill()
    proc.wait()
    acknowledged += [
        orjson.loads(line)["id"] for line in read_until_eof(proc) if line.endswith(b"}\n")
    ]
    study = optuna.load_study(study_name="k", storage=url)
    stored = {t.number for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert set(acknowledged) <= stored
    # SQLite group-commits (issue 24): the tells of the group being answered may be stored
    # without their replies (sent again with skip_if_finished, they are answered without harm),
    # never an earlier one.
    assert all(n > max(acknowledged) for n in stored - set(acknowledged))
    close_all(proc)


# ---- --frame-budget ---------------------------------------------------------------------------


def test_a_frame_over_the_budget_ends_the_worker_with_its_own_status(tmp_path: Path) -> None:
    """The stuck frame is an ask held at its first parameter (a race hook, never released): a
    long ask of a fixed size could end within the budget on a fast machine."""
    proc = spawn(
        "--frame-budget",
        "0.5",
        "--log-level",
        "info",
        stderr=subprocess.PIPE,
        env=race_env(tmp_path, "param_waits"),
    )
    create_wide(proc)
    send(proc, lines({"id": "ok", "method": "ping"}, long_ask("stuck", n=1)))
    assert read_reply(proc)["id"] == "ok"
    assert proc.wait(30) == 75
    assert proc.stderr is not None
    records = [orjson.loads(line) for line in proc.stderr.read().splitlines()]
    (overrun,) = [r for r in records if r["event"] == "frame_budget_exceeded"]
    assert overrun["level"] == "error" and overrun["budget_s"] == 0.5
    assert overrun["elapsed_s"] >= 0.5
    assert overrun["id"] == "stuck" and overrun["method"] == "ask" and overrun["frame_bytes"] > 0
    assert "frame_head" not in overrun  # the frame itself only at debug level
    assert (tmp_path / "param-paused").exists()  # it was held in the ask, not elsewhere
    close_all(proc)


def _quietly(fn: Any, *args: Any) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        fn(*args)


# ---- bounded memory whatever the parent sends (issue 17) --------------------------------------

ADDRESS_SPACE_LIMIT = 1 << 30
"""1 GiB of address space for the worker (it starts at about 0.3 GiB of mostly unused mappings)."""
RSS_GROWTH_BOUND_MIB = 64


def _limit_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_burst_of_expensive_exports_keeps_memory_bounded() -> None:
    """300 ``export`` frames of a 600-trial study in one write (about 70 MiB of replies): each
    reply leaves before the next is made, so the worker's peak RSS grows by one reply, not by the
    whole burst (it used to hold and join them all, and died under an address-space limit)."""
    proc = spawn(preexec_fn=_limit_address_space)
    create_wide(proc)
    for _ in range(3):
        send(proc, lines({"id": "a", "method": "ask", "params": {"study": "w", "n": 20}}))
        for trial in read_reply(proc)["result"]["trials"]:
            send(
                proc,
                lines(
                    {
                        "id": "t",
                        "method": "tell",
                        "params": {"study": "w", "number": trial["number"], "value": 1.0},
                    }
                ),
            )
            assert "result" in read_reply(proc)
    send(proc, lines({"id": "e", "method": "export", "params": {"study": "w"}}))
    one_reply = len(orjson.dumps(read_reply(proc)))
    baseline = _peak_rss_mib(proc.pid)
    burst = lines(*({"id": i, "method": "export", "params": {"study": "w"}} for i in range(300)))
    burst += lines({"id": "p", "method": "ping"})
    writer = threading.Thread(target=send, args=(proc, burst))
    writer.start()
    for i in range(300):
        reply = read_reply(proc)
        assert reply["id"] == i and "result" in reply
    assert read_reply(proc)["result"] == {"pong": True}
    writer.join()
    growth = _peak_rss_mib(proc.pid) - baseline
    assert growth < RSS_GROWTH_BOUND_MIB, (growth, one_reply)
    assert 300 * one_reply > 4 * RSS_GROWTH_BOUND_MIB * 2**20 / 10  # the burst is big
    close_all(proc)
