"""The real worker, killed (SIGKILL, by itself) right after an ``ask`` stored its trial and before
the reply is written: the moment a reply dies with the worker, made deterministic for the tests.

Run as ``python crash_after_ask.py -m bridge_worker ARGS...`` (what ``OptunaBridge.Worker`` runs,
through a wrapper script given as ``python:``). ``OB_CRASH_AT``: the first trial number whose ask
kills; ``OB_CRASH_MARKER``: a file made before the kill, so only one worker of the test dies.
"""

import os
import signal
import sys

from bridge_worker.__main__ import main
from bridge_worker.wire import dispatch

_run = dispatch.Dispatcher.run  # every request's handler runs here, decoded in one pass or two


def _run_then_crash(self, method, params):  # type: ignore[no-untyped-def]
    result = _run(self, method, params)
    marker = os.environ["OB_CRASH_MARKER"]
    if (
        method.name == "ask"
        and not os.path.exists(marker)
        and any(t.number >= int(os.environ["OB_CRASH_AT"]) for t in result.trials)
    ):
        with open(marker, "w") as f:
            f.write(" ".join(str(t.number) for t in result.trials))
        os.kill(os.getpid(), signal.SIGKILL)
    return result


dispatch.Dispatcher.run = _run_then_crash  # type: ignore[method-assign]
args = sys.argv[1:]
if args[:2] == ["-m", "bridge_worker"]:
    args = args[2:]
sys.exit(main(args))
