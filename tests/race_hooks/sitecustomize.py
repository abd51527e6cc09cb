"""Race points inside a real worker process, for tests (``tests/races.py`` starts workers with
this directory on ``PYTHONPATH``; Python imports ``sitecustomize`` at start-up).

``BRIDGE_RACE_DIR`` is a directory shared with the test; ``BRIDGE_RACE_HOOKS`` a comma list of:

- ``finish_barrier``: the main thread's first write that finishes a trial waits until
  ``BRIDGE_RACE_PARTIES`` processes (default 2) reached it (two workers telling one trial);
- ``finish_waits``: the main thread's first finishing write touches ``finish-paused`` and waits
  for ``go`` (something else finishes the trial meanwhile);
- ``sweep_waits``: the lease thread's first fail touches ``sweep-paused`` and waits for ``go``,
  then ``sweep-done`` once its write returned or was refused;
- ``write_waits``: the main thread's first write of a trial's user attr or intermediate value
  touches ``write-paused`` and waits for ``go``;
- ``sweep_dies``: the lease thread's first fail is written, then ``sweep-failed`` is touched and
  the thread sleeps forever (the test kills the process there);
- ``sweep_marks``: each fail the lease thread wrote touches ``sweep-failed-<n>``;
- ``delete_waits``: the main thread's first study deletion is written, then ``delete-paused``
  is touched and the worker waits for ``go`` (an import's swap by copy, cut after its delete);
- ``read_waits``: once ``arm-read`` exists, the main thread's next read of a study's trials
  touches ``read-paused`` and waits for ``go`` (the study is replaced under a reader);
- ``param_waits``: the main thread's first write of a trial's parameter touches ``param-paused``
  and waits for ``go`` (the test kills the worker in the middle of an ``ask``);
- ``pop_waits``: the main thread's first write that sets a trial RUNNING (the pop of an enqueued
  trial) touches ``pop-paused`` and waits for ``go`` before it writes; ``popped_waits`` the
  same (``popped-paused``) right after the write;
- ``create_waits``: the first study created is created, then ``create-paused`` is touched and
  the worker waits for ``go`` before writing anything into it.

- ``kill_at_write``: the main thread's storage writes are counted (each one rewrites the file
  ``writes`` with the count so far); with ``BRIDGE_RACE_KILL_AT=N`` the process kills itself with
  SIGKILL just before its N-th write (a kill -9 at an exact point of a long sequence of writes,
  however fast or loaded the machine).
- ``pause_at_write``: the same count; with ``BRIDGE_RACE_PAUSE_AT=N`` the main thread touches
  ``write-paused`` just before its N-th write and waits for ``go`` (a signal sent meanwhile lands
  at an exact point of a long frame, however fast or loaded the machine).

- ``draw_hangs``: a figure's drawing (in its sandboxed process) touches ``draw-started`` and
  sleeps (a drawing that outlasts ``--max-plot-seconds`` however fast the machine).

- ``journal_tears``: the first journal append over 1 MiB writes half its bytes, touches
  ``torn`` and sleeps (the test kills the process mid-record).

``BRIDGE_RACE_FAIL_ADD_AT=N`` makes the N-th trial written from a template (``add_trials``)
fail with a storage error.

Waits end after 60 s, so a test that goes wrong fails instead of hanging.
"""

from __future__ import annotations

import os

if os.environ.get("BRIDGE_RACE_DIR"):
    import threading
    import time
    from pathlib import Path
    from typing import Any

    import bridge_worker.storage.handle as _storage_module

    _DIR = Path(os.environ["BRIDGE_RACE_DIR"])
    _HOOKS = set(os.environ.get("BRIDGE_RACE_HOOKS", "").split(","))
    _PARTIES = int(os.environ.get("BRIDGE_RACE_PARTIES", "2"))
    _done: set[str] = set()
    _marks = [0]

    def _wait_for(condition: Any) -> None:
        deadline = time.monotonic() + 60
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _once(hook: str) -> bool:
        if hook not in _HOOKS or hook in _done:
            return False
        _done.add(hook)
        return True

    def _wrap(storage: Any) -> Any:
        original = storage.set_trial_state_values

        def set_trial_state_values(trial_id: int, state: Any, values: Any = None) -> Any:
            if not state.is_finished():
                return popping(trial_id, state, values)
            lease_thread = threading.current_thread().name == "leases"
            if not lease_thread and _once("finish_barrier"):
                (_DIR / f"barrier-{os.getpid()}").touch()
                _wait_for(lambda: len(list(_DIR.glob("barrier-*"))) >= _PARTIES)
            if not lease_thread and _once("finish_waits"):
                (_DIR / "finish-paused").touch()
                _wait_for((_DIR / "go").exists)
            if lease_thread and _once("sweep_waits"):
                (_DIR / "sweep-paused").touch()
                _wait_for((_DIR / "go").exists)
                try:
                    return original(trial_id, state, values)
                finally:
                    (_DIR / "sweep-done").touch()
            result = original(trial_id, state, values)
            if lease_thread and _once("sweep_dies"):
                (_DIR / "sweep-failed").touch()
                time.sleep(3600)
            if lease_thread and "sweep_marks" in _HOOKS:
                _marks[0] += 1
                (_DIR / f"sweep-failed-{_marks[0]}").touch()
            return result

        def popping(trial_id: int, state: Any, values: Any = None) -> Any:
            running = state.name == "RUNNING" and threading.current_thread().name != "leases"
            if running and _once("pop_waits"):
                (_DIR / "pop-paused").touch()
                _wait_for((_DIR / "go").exists)
            result = original(trial_id, state, values)
            if running and _once("popped_waits"):
                (_DIR / "popped-paused").touch()
                _wait_for((_DIR / "go").exists)
            return result

        storage.set_trial_state_values = set_trial_state_values
        for method in ("set_trial_user_attr", "set_trial_intermediate_value"):
            setattr(storage, method, _pausing_write(getattr(storage, method)))
        for method in ("set_trial_param", "_set_trial_param"):  # RDB: Optuna's cache calls _
            if hasattr(storage, method):
                setattr(
                    storage,
                    method,
                    _pausing_write(getattr(storage, method), "param_waits", "param"),
                )
        create_study = storage.create_new_study

        def create_new_study(*args: Any, **kwargs: Any) -> Any:
            study_id = create_study(*args, **kwargs)
            if _once("create_waits"):
                (_DIR / "create-paused").touch()
                _wait_for((_DIR / "go").exists)
            return study_id

        storage.create_new_study = create_new_study
        delete_study = storage.delete_study

        def delete_with_pause(study_id: int) -> None:
            delete_study(study_id)
            if threading.current_thread().name != "leases" and _once("delete_waits"):
                (_DIR / "delete-paused").touch()
                _wait_for((_DIR / "go").exists)

        storage.delete_study = delete_with_pause
        for method in ("get_all_trials", "_get_trials"):  # RDB: Optuna's cache calls _
            if hasattr(storage, method):
                setattr(storage, method, _pausing_read(getattr(storage, method)))
        backend = getattr(storage, "_backend", None)
        if "journal_tears" in _HOOKS and hasattr(backend, "_file_path"):
            append = backend.append_logs

            def append_logs(logs: Any) -> None:
                import json

                data = ("\n".join(json.dumps(log) for log in logs) + "\n").encode()
                if len(data) > 2**20 and _once("journal_tears"):
                    with open(backend._file_path, "ab") as f:
                        f.write(data[: len(data) // 2])
                        f.flush()
                    (_DIR / "torn").touch()
                    time.sleep(3600)
                append(logs)

            backend.append_logs = append_logs
        fail_at = int(os.environ.get("BRIDGE_RACE_FAIL_ADD_AT", "0"))
        added = [0]
        for method in ("create_new_trial", "_create_new_trial"):  # RDB: Optuna's cache calls _
            if fail_at and hasattr(storage, method):
                setattr(storage, method, _failing(getattr(storage, method), fail_at, added))
        if "kill_at_write" in _HOOKS or "pause_at_write" in _HOOKS:
            kill_at = int(os.environ.get("BRIDGE_RACE_KILL_AT", "0"))
            pause_at = int(os.environ.get("BRIDGE_RACE_PAUSE_AT", "0"))
            for method in _WRITES:
                if hasattr(storage, method):
                    write = getattr(storage, method)
                    setattr(storage, method, _counted_write(write, kill_at, pause_at))
        return storage

    _WRITES = (
        "create_new_study",
        "delete_study",
        "set_study_user_attr",
        "set_study_system_attr",
        "create_new_trial",
        "set_trial_param",
        "set_trial_state_values",
        "set_trial_intermediate_value",
        "set_trial_user_attr",
        "set_trial_system_attr",
        "_create_new_trial",  # RDB: Optuna's cache calls these two, the public ones call them
        "_set_trial_param",
    )
    _written = [0]
    _writing = threading.local()

    def _counted_write(write: Any, kill_at: int, pause_at: int) -> Any:
        def counted_write(*args: Any, **kwargs: Any) -> Any:
            if getattr(_writing, "depth", 0):  # a write made by a counted one counts once
                return write(*args, **kwargs)
            if threading.current_thread().name != "leases":
                _written[0] += 1
                if _written[0] == kill_at:
                    import signal

                    os.kill(os.getpid(), signal.SIGKILL)
                if _written[0] == pause_at:
                    (_DIR / "write-paused").touch()
                    _wait_for((_DIR / "go").exists)
                (_DIR / "writes").write_text(str(_written[0]))
            _writing.depth = 1
            try:
                return write(*args, **kwargs)
            finally:
                _writing.depth = 0

        return counted_write

    def _pausing_write(write: Any, hook: str = "write_waits", mark: str = "write") -> Any:
        def paused_write(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread().name != "leases" and _once(hook):
                (_DIR / f"{mark}-paused").touch()
                _wait_for((_DIR / "go").exists)
            return write(*args, **kwargs)

        return paused_write

    def _pausing_read(read: Any) -> Any:
        def paused_read(*args: Any, **kwargs: Any) -> Any:
            if (
                "read_waits" in _HOOKS
                and threading.current_thread().name != "leases"
                and (_DIR / "arm-read").exists()
                and _once("read_waits")
            ):
                (_DIR / "read-paused").touch()
                _wait_for((_DIR / "go").exists)
            return read(*args, **kwargs)

        return paused_read

    def _failing(create: Any, fail_at: int, added: list[int]) -> Any:
        def create_new_trial(study_id: int, template_trial: Any = None) -> Any:
            if template_trial is not None:
                added[0] += 1
                if added[0] == fail_at:
                    import optuna

                    raise optuna.exceptions.StorageInternalError("injected failure")
            return create(study_id, template_trial)

        return create_new_trial

    if "draw_hangs" in _HOOKS:
        import bridge_worker.studies.figures as _figures

        def _hanging_draw(*args: Any, **kwargs: Any) -> bytes:
            (_DIR / "draw-started").touch()
            time.sleep(3600)
            return b""

        _figures._draw = _hanging_draw

    _open = _storage_module.open_storage

    def open_storage(options: Any) -> Any:
        return _wrap(_open(options))

    _storage_module.open_storage = open_storage
